"""A dataset imported from a released layout runs through the workflow, beside synthetic ones
(config.source per dataset); a partial download stops the workflow before any job runs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent / "data"))
from released_layouts import write_chesapeake_cvpr  # noqa: E402
from workflow_helpers import snakemake  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def mixed(workflow_copy):
    """config/here.yaml: lsr from CVPR 2019 tiles (local), noldo synthetic."""
    settings = write_chesapeake_cvpr(workflow_copy / "download")
    config = yaml.safe_load((workflow_copy / "config" / "test.yaml").read_text())
    config.update(source={"lsr": "local"}, datasets=["noldo", "lsr"], local={"lsr": {**settings, "root": "download"}})
    (workflow_copy / "config" / "here.yaml").write_text(yaml.safe_dump(config))
    return workflow_copy


def test_dry_run_takes_each_dataset_from_its_source(mixed):
    out = snakemake(mixed, "-n", "--configfile", "config/here.yaml", "--quiet", "rules").stdout
    jobs = {line.split()[0]: int(line.split()[1]) for line in out.splitlines() if len(line.split()) == 2 and line.split()[1].isdigit()}
    assert jobs["acquire_local"] == 1 and jobs["acquire_synthetic"] == 1
    assert jobs["train_epitome"] >= 1  # the LSR stage plans on the imported tiles


def test_imported_tiles_get_their_data_card(mixed):
    snakemake(mixed, "results/data/lsr/datacard.json", "--configfile", "config/here.yaml")
    card = json.loads((mixed / "results" / "data" / "lsr" / "datacard.json").read_text())
    assert card["source"] == "local:chesapeake_cvpr_tiles"
    index = (mixed / "results" / "data" / "lsr" / "index.csv").read_text().splitlines()
    assert len(index) == 3 and "EPSG:26918" in index[1]


def test_partial_download_fails_before_any_job(mixed):
    tile = next((mixed / "download").glob("md_*test_tiles/m_3807504*_nlcd.tif"))
    tile.rename(tile.with_suffix(".bak"))
    try:
        proc = snakemake(mixed, "-n", "--configfile", "config/here.yaml", check=False)
    finally:
        tile.with_suffix(".bak").rename(tile)
    assert proc.returncode != 0
    assert "config.local.lsr: local.lsr (chesapeake_cvpr_tiles): 1 of 6 expected files missing" in proc.stderr + proc.stdout
    assert "m_3807504_nw_18_1_nlcd.tif" in proc.stderr + proc.stdout


def test_paper_config_points_at_the_downloads(workflow_copy):
    """config/paper.yaml reads the papers' downloads: without them it stops naming the first missing file."""
    if (workflow_copy / "data" / "ssl4eo_s12_nol").exists():
        pytest.skip("the papers' downloads are present")
    proc = snakemake(workflow_copy, "-n", "--configfile", "config/paper.yaml", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "config.local.noldo: local.noldo (cromss_nol_lmdb): 3 of 3 expected files missing" in out
    assert "first missing: data/ssl4eo_s12_nol/dw_labels.lmdb/data.mdb" in out
