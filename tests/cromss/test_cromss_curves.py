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
