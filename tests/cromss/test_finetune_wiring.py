"""The fine-tuning grid's wiring (rows, files, per-row settings) and the table writers on hand-made rows."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml
from snakemake.utils import validate

from eolabels.finetune.report import tabulate_ablation, tabulate_smoothing, tabulate_task
from eolabels.finetune.wiring import Row, row_settings, rows, smoothing_table_rows, source_file


@pytest.fixture
def sections(repo_root):
    config = yaml.safe_load((repo_root / "config" / "test.yaml").read_text())
    cromss, finetune = config["cromss"], config["finetune"]
    validate(cromss, str(repo_root / "config" / "schemas" / "cromss.yaml"), set_default=True)
    validate(finetune, str(repo_root / "config" / "schemas" / "finetune.yaml"), set_default=True)
    return finetune, cromss


def test_rows_cover_inputs_sources_smoothing_and_denoised(sections):
    finetune, cromss = sections  # test.yaml: band set b9, every variant
    grid = rows(finetune, cromss, ["noldo", "dw", "osm", "dfc2020"], denoised_available=True)
    dw = [r for r in grid if r.task == "dw"]
    assert [r.source for r in dw if r.input == "s1"] == ["random", "s1", "midF", "lateF", "cromss_midF", "cromss_lateF"]
    s2 = [r.source for r in dw if r.input == "s2_b9"]
    # (0.15, 0.05) is the main CromSS-midF row itself: no second run of the same pretraining
    assert s2 == ["random", "s2", "midF", "lateF", "cromss_midF", "cromss_lateF", "cromss_midF-ls0-0",
                  "cromss_midF-ls0-0.2", "cromss_midF-ls0.2-0", "cromss_midF-denoised"]
    assert len(grid) == 3 * 16
    assert rows(finetune, cromss, ["dw"], denoised_available=False) == [Row("dw", "s1", "random"),
                                                                       Row("dw", "s2_b9", "random")]
    table6 = smoothing_table_rows(finetune, cromss, grid)
    assert table6[Row("osm", "s2_b9", "cromss_midF")] == "ls0.15-0.05" and len(table6) == 3 * 4


def test_source_files_and_row_settings(sections):
    finetune, cromss = sections
    assert source_file("random", "s1", finetune, cromss) is None
    assert source_file("midF", "s1", finetune, cromss) == "results/pretrain/midF_b9/encoders.pt"
    assert source_file("cromss_midF-ls0-0.2", "s2_b9", finetune, cromss) == \
        "results/pretrain_smoothing/ls0-0.2/cromss_midF_b9/encoders.pt"
    assert source_file("cromss_midF-denoised", "s2_b9", finetune, cromss) == \
        "results/pretrain_dw_denoised/cromss_midF_b9/encoders.pt"
    dw = row_settings(finetune, "dw")
    changed = {**finetune, "frameworks": {**finetune["frameworks"], "osm": "unet"}}
    assert row_settings(changed, "dw") == dw  # another task's framework re-runs nothing here
    assert row_settings(changed, "osm") != row_settings(finetune, "osm")
    assert "tasks" not in dw and dw["frameworks"] == {"dw": "deeplabv3plus"}


def _summary(path, task, ft_input, source, runs):
    means = {m: {k: sum(r[k] for r in rs) / len(rs) for k in rs[0]} for m, rs in runs.items()}
    import statistics

    stds = {m: {k: statistics.stdev([r[k] for r in rs]) for k in rs[0]} for m, rs in runs.items()}
    path.write_text(json.dumps({
        "task": task, "input": ft_input, "modality": ft_input[:2], "bands": ft_input[3:] or None, "source": source,
        "data": "synthetic", "framework": "fpn",
        "modes": {m: {"runs": rs, "mean": means[m], "std": stds[m]} for m, rs in runs.items()}}))
    return path


def _runs(base):
    return [{"OA": base + d, "AA": base, "mIoU": base + d, "mF1": base} for d in (-0.1, 0.1, 0.0)]


def test_tables_hold_mean_and_sample_std_worked_by_hand(tmp_path):
    paths = [_summary(tmp_path / f"{s}.json", "osm", "s2_b9", s, {"frozen": _runs(b), "finetuned": _runs(b + 0.1)})
             for s, b in (("random", 0.5), ("cromss_midF", 0.7), ("cromss_midF-ls0-0", 0.6))]
    table = tabulate_task(paths, ["frozen", "finetuned"], tmp_path / "t.csv", tmp_path / "t.md", tmp_path / "r.csv")
    # runs 0.4, 0.6, 0.5: mean 0.5, sample std sqrt((0.01 + 0.01 + 0) / 2) = 0.1
    assert table.loc[0, "frozen mIoU"] == "0.5000 ± 0.1000" and table.loc[1, "fine-tuned OA"] == "0.8000 ± 0.1000"
    assert list(table["encoder weights"]) == ["random init", "CromSS-midF", "CromSS-midF (β 0, α 0)"]
    md = (tmp_path / "t.md").read_text()
    assert "SYNTHETIC" in md and "s2_b9, frozen: the best pretrained encoder (CromSS-midF, mIoU 0.7000) " \
        "beats random init (0.5000)" in md
    assert len(pd.read_csv(tmp_path / "r.csv")) == 18
    ablation = tabulate_ablation(paths, ["frozen"], tmp_path / "a.csv", tmp_path / "a.md")
    assert list(ablation["encoder weights"]) == ["random init", "CromSS-midF"]
    assert ablation.loc[1, "osm frozen mIoU"] == "0.7000 ± 0.1000"
    smoothing = tabulate_smoothing(paths, ["frozen", "finetuned"],
                                   {"cromss_midF-ls0-0": "ls0-0", "cromss_midF": "ls0.15-0.05"},
                                   tmp_path / "s.csv", tmp_path / "s.md")
    assert list(smoothing["β (spatial-temporal)"]) == ["0", "0.15"]
    assert smoothing.loc[1, "osm fine-tuned mIoU"] == "0.8000 ± 0.1000"


def test_a_missing_row_leaves_no_table(tmp_path):
    path = _summary(tmp_path / "a.json", "dw", "s1", "random", {"frozen": _runs(0.5)})
    with pytest.raises(FileNotFoundError):
        tabulate_task([path, tmp_path / "missing.json"], ["frozen"], tmp_path / "t.csv", tmp_path / "t.md",
                      tmp_path / "r.csv")
    assert not list(tmp_path.glob("t.*")) and not (tmp_path / "r.csv").exists()
