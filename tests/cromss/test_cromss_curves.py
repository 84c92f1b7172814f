"""Pretraining curves (cromss/curves.py): the figure title names the data, SYNTHETIC only when it is."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from eolabels.cromss import curves
from eolabels.report.tables import source_tag


@pytest.mark.parametrize("source", ["synthetic", "local:s2_dw_scene"])
def test_curve_title_names_the_source(tmp_path, monkeypatch, source):
    pd.DataFrame({"epoch": [0, 1], "tr_loss": [2.0, 1.5], "v_loss": [2.1, 1.7], "lr": [0.01, 0.005],
                  "v1_OA": [0.4, 0.5], "v1_mIoU": [0.2, 0.3]}).to_csv(tmp_path / "metrics.csv", index=False)
    (tmp_path / "summary.json").write_text(json.dumps(
        {"variant": "s2", "bands": "b9", "encoder": "e", "modalities": ["s2"], "source": source}))
    titles = []
    save = curves.save_figure

    def record_title(fig, out_png, **kwargs):
        titles.append(fig._suptitle.get_text())
        return save(fig, out_png, **kwargs)

    monkeypatch.setattr(curves, "save_figure", record_title)
    assert curves.plot_pretrain_curves(tmp_path / "metrics.csv", tmp_path / "summary.json",
                                       tmp_path / "curves.png").stat().st_size > 1000
    assert titles == [f"CromSS pretraining s2_b9 (e, s2) — {source_tag(source)}"]
    assert ("SYNTHETIC" in titles[0]) == (source == "synthetic")


def test_curves_add_the_dw_test_panel_when_the_run_scored_it(tmp_path, monkeypatch):
    pd.DataFrame({"epoch": [0, 1, 2], "tr_loss": [2.0, 1.5, 1.2], "v_loss": [2.1, 1.7, 1.5], "lr": [0.01] * 3,
                  "v1_OA": [0.4, 0.5, 0.6], "v2_OA": [0.4, 0.5, 0.6], "t1_OA": [None, 0.3, 0.35],
                  "t1_mIoU": [None, 0.1, 0.2], "t2_OA": [None, 0.5, 0.6], "t2_mIoU": [None, 0.2, 0.3]}
                 ).to_csv(tmp_path / "metrics.csv", index=False)
    (tmp_path / "summary.json").write_text(json.dumps(
        {"variant": "midF", "bands": "b13", "encoder": "e", "modalities": ["s1", "s2"], "source": "synthetic"}))
    figures = []
    save = curves.save_figure

    def record(fig, out_png, **kwargs):
        figures.append(fig)
        return save(fig, out_png, **kwargs)

    monkeypatch.setattr(curves, "save_figure", record)
    curves.plot_pretrain_curves(tmp_path / "metrics.csv", tmp_path / "summary.json", tmp_path / "curves.png")
    axes = figures[0].axes
    assert axes[2].get_title().startswith("(c) DW test split")
    lines = {line.get_label(): line for line in axes[2].get_lines()}
    assert set(lines) == {"S1 OA", "S1 mIoU", "S2 OA", "S2 mIoU"}
    assert list(lines["S2 OA"].get_xdata()) == [1, 2] and list(lines["S2 OA"].get_ydata()) == [0.5, 0.6]
