"""The acquisition rules end to end: Snakemake runs the shard and merge jobs with the replay
transport (offline), then resumes; a malformed sheet fails the dry run naming its row."""

from __future__ import annotations

import pytest
import yaml
from replay_world import constructed_s1, geotiff_bytes, real_dw, real_s2, register_location
from workflow_helpers import snakemake

from eolabels.acquisition.noldo import NoldoSettings, location_grid
from eolabels.acquisition.sheets import Location
from eolabels.acquisition.shards import shard_of
from eolabels.data.index import DatasetIndex

pytestmark = pytest.mark.slow
GOOD = Location("good", -75.6237, 37.6755, date="2016-01-12")
SEA = Location("sea", -40.0, 30.0, date="2016-01-12")
CFG = NoldoSettings(tile_size=16)


def write_config(root, sheet: str) -> str:
    config = {"earthengine": {
        "enabled": True, "transport": "replay", "responses": "responses", "datasets": ["noldo"], "shards": 2,
        "workers": 2, "backoff": {"base_s": 0.01, "cap_s": 0.02, "attempts": 2},
        "noldo": {"sheet": sheet, "tile_size": 16},
    }}
    (root / "acq.yaml").write_text(yaml.safe_dump(config))
    return "acq.yaml"


def test_shards_merge_and_resume(workflow_copy, replay, scene):
    from eolabels.acquisition.transport import ResponseStore

    root = workflow_copy
    store = ResponseStore(root / "responses")
    grid = location_grid(GOOD, CFG)
    register_location(store, GOOD, CFG, s2=geotiff_bytes(real_s2(grid), grid), dw=geotiff_bytes(real_dw(scene, grid), grid),
                      s1=geotiff_bytes(constructed_s1(grid), grid))
    register_location(store, SEA, CFG, s2=None, dw=None, s1=None, seasons=(), s2_count=0)
    (root / "config/locations/t.csv").write_text("id,lon,lat,date\ngood,-75.6237,37.6755,2016-01-12\nsea,-40.0,30.0,2016-01-12\n")
    target = "results/acquisition/noldo/dataset/index.csv"
    snakemake(root, target, "--configfile", write_config(root, "config/locations/t.csv"))
    index = DatasetIndex.open(root / "results/acquisition/noldo/dataset")
    assert index.meta.source == "earthengine" and sorted(index.table["season"]) == [0, 1, 2, 3]
    assert set(index.table["id"]) == {"good"}
    sea_shard = shard_of("sea", 2)
    summary = (root / f"results/acquisition/noldo/shards/{sea_shard}.csv").read_text()
    assert "sea,failed" in summary and "no Sentinel-2 L1C image" in summary
    assert "credentials" not in (root / f"logs/acquire_shard/noldo/{sea_shard}.log").read_text().lower()
    # as after a kill: the good location's shard job and the merge left no output; the rerun finds the
    # location done in the shard's journal and fetches nothing
    good_shard = shard_of("good", 2)
    (root / f"results/acquisition/noldo/shards/{good_shard}.csv").unlink()
    (root / target).unlink()
    snakemake(root, target, "--configfile", "acq.yaml")
    log = (root / f"logs/acquire_shard/noldo/{good_shard}.log").read_text()
    assert "1 done before, 0 to fetch" in log


def test_malformed_sheet_fails_the_dry_run_naming_the_row(workflow_copy):
    root = workflow_copy
    (root / "config/locations/bad.csv").write_text("id,lon,lat\na,1,2\nb,200,2\n")
    proc = snakemake(root, "-n", "--configfile", write_config(root, "config/locations/bad.csv"), check=False)
    assert proc.returncode != 0
    assert "bad.csv: row 2: lon '200' is out of range" in proc.stdout + proc.stderr
