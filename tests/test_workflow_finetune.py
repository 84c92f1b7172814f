"""The fine-tuning part of the workflow in dry runs of the default and test configs (tests/test_workflow.py
runs config/test.yaml end to end and checks every row of Tables II–VI)."""

from __future__ import annotations

import pytest

from workflow_helpers import snakemake

TABLES = ["finetune_dfc2020", "finetune_dw", "finetune_osm", "finetune_ablation", "finetune_smoothing"]


@pytest.mark.parametrize("configfile", ["config/config.yaml", "config/test.yaml"])
def test_dry_run_plans_every_table(workflow_copy, configfile):
    proc = snakemake(workflow_copy, "-n", "--configfile", configfile)
    for table in TABLES:
        assert f"results/tables/{table}.csv" in proc.stdout, table
    assert "finetune_row" in proc.stdout and "pretrain_encoder_smoothing" in proc.stdout
    for task in ("dfc2020", "dw", "osm"):
        assert f"results/finetune/{task}/maps.png" in proc.stdout


def test_a_missing_local_weight_file_fails_the_dry_run_naming_its_row(workflow_copy):
    (workflow_copy / "config" / "ext.yaml").write_text(
        "finetune:\n  external:\n    - {name: moco, kind: torchvision, path: /nowhere/moco.pth, input: s2_b9, "
        "encoder: resnet50}\n")
    proc = snakemake(workflow_copy, "-n", "--configfile", "config/test.yaml", "config/ext.yaml", check=False)
    assert proc.returncode != 0
    assert "finetune.external row 'moco': weight file not found: /nowhere/moco.pth" in proc.stdout + proc.stderr
