"""The fine-tuning part of the workflow as a user runs it: dry runs of every config, then every row of
Tables II–VI and the figures on config/test.yaml, and a changed task setting re-running that task only."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from workflow_helpers import snakemake

TABLES = ["finetune_dfc2020", "finetune_dw", "finetune_osm", "finetune_ablation", "finetune_smoothing"]
FIGURES = ["maps", "weight_kl", "bn_kl", "pca"]


@pytest.mark.parametrize("configfile", ["config/config.yaml", "config/test.yaml"])
def test_dry_run_plans_every_table(workflow_copy, configfile):
    proc = snakemake(workflow_copy, "-n", "--configfile", configfile)
    for table in TABLES:
        assert f"results/tables/{table}.csv" in proc.stdout, table
    assert "finetune_row" in proc.stdout and "pretrain_encoder_smoothing" in proc.stdout


@pytest.mark.slow
def test_tables_ii_to_vi_have_every_row_on_the_test_config(workflow_copy):
    targets = [f"results/tables/{t}.csv" for t in TABLES] + [
        f"results/finetune/{task}/{name}.png" for task in ("dfc2020", "dw", "osm") for name in FIGURES]
    snakemake(workflow_copy, *targets, "--configfile", "config/test.yaml")
    tables = workflow_copy / "results" / "tables"
    for task in ("dfc2020", "dw", "osm"):
        table = pd.read_csv(tables / f"finetune_{task}.csv")
        assert len(table) == 16 and set(table["data"]) == {"synthetic"}
        assert table["frozen mIoU"].str.match(r"^\d\.\d{4} ± \d\.\d{4}$").all()
        runs = pd.read_csv(tables / f"finetune_{task}_runs.csv")
        assert len(runs) == 16 * 2 * 2 and runs["mIoU"].between(0, 1).all()  # rows x modes x repeats
    ablation = pd.read_csv(tables / "finetune_ablation.csv")
    assert len(ablation) == 12 and not ablation.filter(like="mIoU").isna().any(axis=None)
    smoothing = pd.read_csv(tables / "finetune_smoothing.csv")
    assert sorted(zip(smoothing["β (spatial-temporal)"], smoothing["α (uniform)"])) == [
        (0, 0), (0, 0.2), (0.15, 0.05), (0.2, 0)]
    assert "SYNTHETIC" in (tables / "finetune_dw.md").read_text()

    # a changed setting of one task re-runs that task's rows only
    config = yaml.safe_load((workflow_copy / "config" / "test.yaml").read_text())
    config["finetune"]["frameworks"] = {"osm": "unet"}
    (workflow_copy / "config" / "changed.yaml").write_text(yaml.safe_dump(config))
    proc = snakemake(workflow_copy, *targets, "-n", "--configfile", "config/changed.yaml")
    planned = [line for line in proc.stdout.splitlines() if line.strip().startswith("wildcards: task=")]
    assert planned and all("task=osm" in line for line in planned)
