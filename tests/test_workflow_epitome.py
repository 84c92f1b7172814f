"""The epitome branch of the workflow as a user runs it, in a copy of the workflow (results never touch the repo).

Dry runs on every config; the LSR and DFC2020 tables on config/test.yaml end to end, checked against
an independent number (the data card's naive label quality) and against the files they come from;
a changed epitome setting re-runs only what depends on it; the real Chesapeake config at reduced size.
"""

import json
import re

import numpy as np
import pandas as pd
import pytest
import yaml

from eolabels.data.geotiff import read_geotiff
from eolabels.data.index import DatasetIndex
from workflow_helpers import snakemake

TABLES = ["results/tables/lsr_synthetic.csv", "results/tables/dfc2020_lsr.csv"]


def jobs(proc):
    """rule → number of jobs, from the job-stats table of a dry run."""
    return {m[0]: int(m[1]) for m in re.findall(r"^(\w+)\s+(\d+)$", proc.stdout + proc.stderr, re.M) if m[0] != "total"}


@pytest.mark.parametrize("configfile", ["config/config.yaml", "config/test.yaml", "config/real_chesapeake.yaml"])
def test_dry_run_plans_the_epitome_branch(workflow_copy, configfile, request):
    if configfile.endswith("real_chesapeake.yaml"):  # a missing patches folder fails the dry run
        real_dir = request.getfixturevalue("real_dir")
        config = yaml.safe_load((workflow_copy / configfile).read_text())
        config["local"]["lsr"]["patches_dir"] = str(real_dir / "chesapeake_wv" / "patches")
        configfile = "config/here_real_chesapeake.yaml"
        (workflow_copy / configfile).write_text(yaml.safe_dump(config))
    planned = jobs(snakemake(workflow_copy, "-n", "--configfile", configfile))
    assert {"train_epitome", "embed_labels", "lsr", "predict_hr", "evaluate_lsr"} <= set(planned)
    if configfile.endswith("real_chesapeake.yaml"):
        assert planned["predict_hr"] == 4 and "dfc2020_evaluate" not in planned
    else:
        assert planned["predict_hr"] == 6 and planned["dfc2020_distill"] == 1


@pytest.mark.slow
def test_epitome_tables_end_to_end_on_test_config(workflow_copy):
    snakemake(workflow_copy, *TABLES, "results/data/lsr/datacard.json", "--configfile", "config/test.yaml")
    results = workflow_copy / "results"
    lsr = pd.read_csv(results / "tables" / "lsr_synthetic.csv")
    assert set(lsr.variant) == {"naive", "colour", "self_epitomic", "epitome"}
    assert lsr[["OA", "AA", "mIoU", "mIoU_present", "mF1"]].apply(lambda c: c.between(0, 1).all()).all()
    assert "SYNTHETIC" in (results / "tables" / "lsr_synthetic.md").read_text()
    # the naive row equals the data card's naive label quality (argmax p(l|c)), computed independently
    card = json.loads((results / "data" / "lsr" / "datacard.json").read_text())
    naive = lsr[(lsr.variant == "naive") & (lsr.tile == "all tiles")].iloc[0]
    assert naive.OA == pytest.approx(card["label_quality"][0]["pixel_accuracy"], abs=1e-4)
    assert lsr[lsr.variant != "naive"].OA.max() > 0.5  # the maps are maps, not noise

    dfc = pd.read_csv(results / "tables" / "dfc2020_lsr.csv")
    assert list(dfc.variant) == ["colour", "epitome", "ensemble", "distilled FCN"]
    assert dfc[["AA", "OA", "mIoU", "mF1"]].apply(lambda c: c.between(0, 1).all()).all()

    # predictions are GeoTIFFs on the input grids; the ensemble follows its rule pixel by pixel
    data = DatasetIndex.open(results / "data" / "dfc2020")
    by_variant = {v: DatasetIndex.open(results / "lsr" / "dfc2020" / v) for v in ("colour", "epitome", "ensemble")}
    row = by_variant["ensemble"].table.iloc[0]
    grid = data.grid(next(r for r in data.rows() if r["id"] == row["id"]))
    maps = {v: read_geotiff(index.path(index.table.iloc[0], "prediction"), expect=grid)[0][0] for v, index in by_variant.items()}
    confused = np.isin(maps["colour"], [5, 7])  # shrubland, barren (config/tables/dfc2020.csv)
    assert np.array_equal(maps["ensemble"], np.where(confused, maps["colour"], maps["epitome"]))

    for figure in ("lsr/lsr/comparison.png", "lsr/dfc2020/comparison.png", "epitome/lsr/means.png", "epitome/dfc2020/promotion.png"):
        assert (results / figure).stat().st_size > 5000
    rerun = snakemake(workflow_copy, *TABLES, "-n", "--configfile", "config/test.yaml")
    assert "Nothing to be done" in rerun.stdout + rerun.stderr

    # one EM setting changed (and the YAML re-ordered by safe_dump): only the LSR EM and what reads it
    # re-run (the epitome's p(l|s), the self-epitomic variant's own EM), not training, embedding or DFC2020
    config = yaml.safe_load((workflow_copy / "config" / "test.yaml").read_text())
    config["epitome"]["lsr"].setdefault("em", {})["iterations"] = 7
    (workflow_copy / "config" / "changed.yaml").write_text(yaml.safe_dump(config))
    planned = jobs(snakemake(workflow_copy, *TABLES, "-n", "--configfile", "config/changed.yaml"))
    assert planned == {"lsr": 1, "predict_hr": 2, "evaluate_lsr": 1}


@pytest.mark.real
@pytest.mark.slow
def test_real_chesapeake_config_at_reduced_size(workflow_copy, real_dir):
    config = yaml.safe_load((workflow_copy / "config" / "real_chesapeake.yaml").read_text())
    config["local"]["lsr"]["patches_dir"] = str(real_dir / "chesapeake_wv" / "patches")
    config["epitome"]["lsr"].update(
        epitome={"side": 24, "iterations": 5, "batch_size": 16, "patch_sizes": [7]},
        embed={"patch_size": 7, "samples": 256},
        self_epitomic={"samples": 128},
        colour={"components": 6, "fit_pixels": 2000, "pooled": False},
    )
    (workflow_copy / "config" / "real_small.yaml").write_text(yaml.safe_dump(config))
    snakemake(workflow_copy, "results/tables/lsr_chesapeake.csv", "--configfile", "config/real_small.yaml",
              "--directory", str(workflow_copy / "real_run"), "--snakefile", str(workflow_copy / "Snakefile"))
    table = pd.read_csv(workflow_copy / "real_run" / "results" / "tables" / "lsr_chesapeake.csv")
    assert set(table.variant) == {"naive", "colour", "self_epitomic", "epitome"}
    assert len(table) == 4 * (8 + 1)
    naive = table[(table.variant == "naive") & (table.tile == "all tiles")].iloc[0]
    assert naive.OA == pytest.approx(0.856, abs=0.01)  # the figure for argmax p(l|c) on these patches
    assert "SYNTHETIC" not in (workflow_copy / "real_run" / "results" / "tables" / "lsr_chesapeake.md").read_text()
