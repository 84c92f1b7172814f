"""The network-similarity part of the workflow as a user runs it: dry runs of every config, and the
toy, density audit and self-denoising branch end to end on config/test.yaml in a temporary copy."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from eolabels.data.geotiff import read_geotiff
from eolabels.data.index import DatasetIndex
from eolabels.data.readers import TileReader
from workflow_helpers import snakemake

TABLES = ("similarity_toy", "density_audit", "self_denoising")


@pytest.mark.parametrize("configfile", ["config/config.yaml", "config/test.yaml", "config/paper.yaml"])
def test_dry_run_plans_the_similarity_branch(workflow_copy, configfile):
    # paper.yaml reads the papers' downloads: plan its settings on a synthetic world of the same size
    synthetic = ["--config", "source=synthetic"] if configfile.endswith("paper.yaml") else []
    proc = snakemake(workflow_copy, "-n", "--configfile", configfile, *synthetic)
    for rule in ("train_segmenter", "audit_density", "denoise_labels", "fit_toys"):
        assert f"rule {rule}:" in proc.stdout or f"localrule {rule}:" in proc.stdout, rule


def test_bad_similarity_key_fails_with_the_key_named(workflow_copy):
    cmd = [sys.executable, "-m", "snakemake", "-n", "--config", "similarity={'train': {'stepz': 3}}"]
    proc = subprocess.run(cmd, cwd=workflow_copy, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and "stepz" in proc.stdout + proc.stderr


@pytest.mark.slow
def test_similarity_branch_end_to_end_on_test_config(workflow_copy):
    targets = [f"results/tables/{name}.csv" for name in TABLES]
    snakemake(workflow_copy, *targets, "--configfile", "config/test.yaml")
    results = workflow_copy / "results"
    for name in ("density_audit", "self_denoising"):
        assert "Synthetic world" in (results / "tables" / f"{name}.md").read_text()
    for png in ("toy/density_soft.png", "toy/density_hard_t0.9.png", "audit/tiles.png", "audit/deciles.png",
                "denoise/rounds.png"):
        assert (results / "similarity" / png).stat().st_size > 5_000, png

    toy = pd.read_csv(results / "tables" / "similarity_toy.csv")
    assert {"sampling", "frequency", "mean_soft", "mean_hard_t0.9"} <= set(toy.columns)

    audit = pd.read_csv(results / "tables" / "density_audit.csv").set_index("measure")
    for measure in ("A2 ratio lowest / highest decile", "A3 AUROC of 1 - label support for wrong label",
                    "A3 baseline AUROC of 1 - p(noisy label)"):
        assert np.isfinite(audit.loc[measure, "value"]), measure
    tiles = pd.read_csv(results / "similarity" / "audit" / "tiles.csv")
    noldo = DatasetIndex.open(results / "data" / "noldo")
    assert (tiles["dataset"] == "noldo").sum() == len(noldo)
    density, grid, names = read_geotiff(workflow_copy / tiles["density_map"][0])
    row = noldo.table.iloc[0]
    assert names == ("log_density",) and grid.crs == row["crs"]
    assert grid.transform[0] == pytest.approx(10.0 * 16) and density.shape[1:] == (3, 3)  # 48 px, stride 16
    samples = pd.read_csv(results / "similarity" / "audit" / "samples.csv")
    assert samples["label_support"].dropna().between(0, 1).all()
    assert {"unreliable", "suspicious_label"} <= set(samples.columns)

    table = pd.read_csv(results / "tables" / "self_denoising.csv")
    assert table["round"].tolist()[0] == 0 and len(table) >= 2
    assert 0.5 <= table["label_accuracy"][0] <= 0.9  # D0: the ~70 %-accurate noisy labels
    rounds = DatasetIndex.open(results / "similarity" / "denoise" / "rounds" / "round1")
    assert list(rounds.meta.layers) == ["dw"] and len(rounds) == len(noldo)

    denoised = DatasetIndex.open(results / "data" / "noldo_denoised")
    assert set(denoised.meta.layers) == set(noldo.meta.layers)
    assert denoised.meta.extra["label_source"] == "dw_denoised"
    assert denoised.table["id"].tolist() == noldo.table["id"].tolist()
    last = DatasetIndex.open(results / "similarity" / "denoise" / "rounds" / f"round{len(table) - 1}")
    exported, _, _ = read_geotiff(denoised.path(denoised.table.iloc[0], "dw"))
    final, _, _ = read_geotiff(last.path(last.table.iloc[0], "dw"))
    assert np.array_equal(exported, final)
    reader = TileReader(denoised)  # usable as a NoLDO-layout noisy-label source
    stack = reader.read_location(reader.locations[0], ["s2", "dw"])
    assert stack["s2"].shape[1] == 13 and stack["dw"].shape[0] == len(denoised.meta.seasons)
    reader.close()

    rerun = snakemake(workflow_copy, "-n", *targets, "--configfile", "config/test.yaml")
    assert "Nothing to be done" in rerun.stdout + rerun.stderr
