"""The acquisition rules in the workflow: a dataset whose source is earthengine is fetched by shard jobs
(replay transport, offline), merged into results/data and read downstream (assembly, readers); the
earthengine config's DAG feeds assembly, the OSM↔DW filter and pretraining; a malformed sheet or an
impossible source map fails the dry run."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import yaml
from replay_world import real_dw, real_s2, register_good_and_partial, register_location
from workflow_helpers import snakemake

from eolabels.acquisition.noldo import NoldoSettings, location_grid
from eolabels.acquisition.sheets import Location
from eolabels.acquisition.shards import shard_of
from eolabels.data.index import DatasetIndex
from eolabels.data.lazy import open_dataset
from eolabels.data.readers import TileReader

pytestmark = pytest.mark.slow
GOOD = Location("good", -75.6237, 37.6755, date="2016-01-12")
PARTIAL = Location("partial", -75.5667, 37.6308, date="2016-01-12")
SEA = Location("sea", -40.0, 30.0, date="2016-01-12")
CFG = NoldoSettings(tile_size=16)


def write_config(root, sheet: str, **extra) -> str:
    config = {"source": {"noldo": "earthengine"}, "earthengine": {
        "transport": "replay", "responses": "responses", "shards": 2,
        "workers": 2, "backoff": {"base_s": 0.01, "cap_s": 0.02, "attempts": 2},
        "noldo": {"sheet": sheet, "tile_size": 16},
    }, **extra}
    (root / "acq.yaml").write_text(yaml.safe_dump(config))
    return "acq.yaml"


def dag_edges(root, *args: str) -> set[tuple[str, str]]:
    """The DAG of a dry run as (upstream job, downstream job) edges, a job named
    ``rule[wildcard=value,...]``: B depends on A where an output of A is an input of B."""
    out = snakemake(root, "-n", *args).stdout
    jobs = []
    for block in re.split(r"^rule ", out, flags=re.M)[1:]:
        fields = dict(re.findall(r"^    (\w+): (.*)$", block, re.M))
        wildcards = fields.get("wildcards", "").replace(", ", ",")
        name = block.split(":", 1)[0] + (f"[{wildcards}]" if wildcards else "")
        jobs.append((name, set(fields.get("input", "").split(", ")), set(fields.get("output", "").split(", "))))
    return {(a, b) for a, _, made in jobs for b, needs, _ in jobs if made & needs - {""}}


def test_source_earthengine_through_merge_assembly_and_readers(workflow_copy, replay, scene):
    from eolabels.acquisition.transport import ResponseStore

    root = workflow_copy
    store = ResponseStore(root / "responses")
    register_good_and_partial(store, GOOD, PARTIAL, CFG, scene)
    register_location(store, SEA, CFG, s2=None, dw=None, s1=None, seasons=(), s2_count=0)
    (root / "config/locations/t.csv").write_text(
        "id,lon,lat,date\ngood,-75.6237,37.6755,2016-01-12\npartial,-75.5667,37.6308,2016-01-12\n"
        "sea,-40.0,30.0,2016-01-12\n")
    target = "results/data/noldo/index.csv"
    snakemake(root, target, "--configfile", write_config(root, "config/locations/t.csv"))
    # the merge wrote what the assembly reads: every done location with the seasons it has
    raw = DatasetIndex.open(root / "results/data/noldo_raw")
    assert raw.meta.source == "earthengine" and sorted(raw.table["id"]) == ["good"] * 4 + ["partial"]
    noldo = DatasetIndex.open(root / "results/data/noldo")
    assembly = json.loads((root / "results/data/noldo/dataset.json").read_text())["extra"]["assembly"]
    assert (assembly["locations_raw"], assembly["locations_kept"]) == (2, 1)
    assert assembly["missing_by_season"]["spring"] == {"s2": 1, "s1": 1, "dw": 1}
    assert assembly["missing_by_season"]["winter"] == {"s2": 0, "s1": 0, "dw": 0}
    assert set(noldo.table["id"]) == {"good"} and sorted(noldo.table["season"]) == [0, 1, 2, 3]
    # the pixels downstream readers see are the replayed real S2 / DW pixels
    grid = location_grid(GOOD, CFG)
    winter = int(np.flatnonzero(noldo.table["season"] == 3)[0])
    with TileReader(noldo) as reader:
        tiles = reader.read(winter, ["dw", "s2"])
    np.testing.assert_array_equal(tiles["dw"][0], real_dw(scene, grid))
    np.testing.assert_array_equal(tiles["s2"], real_s2(grid))
    lazy = open_dataset(root / "results/data/noldo", layers=["dw"])
    np.testing.assert_array_equal(lazy["dw"].sel(sample="good").isel(season=3).values.squeeze(), real_dw(scene, grid))
    sea_shard = shard_of("sea", 2)
    summary = (root / f"results/acquisition/noldo/shards/{sea_shard}.csv").read_text()
    assert "sea,failed" in summary and "no Sentinel-2 L1C image" in summary
    assert "credentials" not in (root / f"logs/acquire_shard/noldo/{sea_shard}.log").read_text().lower()
    # as after a kill: the good location's shard job and the merge left no output; the rerun finds the
    # location done in the shard's journal and fetches nothing
    good_shard = shard_of("good", 2)
    (root / f"results/acquisition/noldo/shards/{good_shard}.csv").unlink()
    (root / "results/data/noldo_raw/index.csv").unlink()
    snakemake(root, "results/data/noldo_raw/index.csv", "--configfile", "acq.yaml")
    log = (root / f"logs/acquire_shard/noldo/{good_shard}.log").read_text()
    done = sum(shard_of(i, 2) == good_shard for i in ("good", "partial"))
    assert f"{done} done before, {int(sea_shard == good_shard)} to fetch" in log  # a failed one is tried again


def test_earthengine_config_feeds_assembly_filter_and_pretraining(workflow_copy):
    """config/earthengine.yaml as shipped: its dry run resolves offline, and the datasets it names come
    from the shard and merge jobs, not from the synthetic world."""
    edges = dag_edges(workflow_copy, "--configfile", "config/earthengine.yaml")
    jobs = {job for edge in edges for job in edge}
    for fetched, merged in (("noldo", "noldo_raw"), ("dw", "dw"), ("osm", "osm_raw")):
        for shard in (0, 1):
            assert (f"acquire_shard[dataset={fetched},shard={shard}]", f"merge_shards[dataset={merged}]") in edges
    assert ("merge_shards[dataset=noldo_raw]", "assemble_noldo") in edges
    assert ("merge_shards[dataset=osm_raw]", "filter_osm") in edges
    assert ("merge_shards[dataset=dw]", "filter_osm") in edges
    assert ("assemble_noldo", "pretrain_encoder[pretrain_variant=cromss_midF,s2_bands=b13]") in edges
    synthetic = {job for job in jobs if job.startswith("acquire_synthetic")}
    assert synthetic == {"acquire_synthetic[dataset=dfc2020]", "acquire_synthetic[dataset=lsr]"}


def test_malformed_sheet_fails_the_dry_run_naming_the_row(workflow_copy):
    root = workflow_copy
    (root / "config/locations/bad.csv").write_text("id,lon,lat\na,1,2\nb,200,2\n")
    proc = snakemake(root, "-n", "--configfile", write_config(root, "config/locations/bad.csv"), check=False)
    assert proc.returncode != 0
    assert "bad.csv: row 2: lon '200' is out of range" in proc.stdout + proc.stderr


@pytest.mark.parametrize(("source", "message"), [
    ({"osm": "earthengine"}, "osm comes from earthengine (OSM labels of the DW sheet's tiles) but dw from synthetic"),
    ({"dfc2020": "earthengine"}, "dfc2020 cannot come from earthengine"),
    ({"dw": "earthengine"}, "config.earthengine.dw_tiles.label_dir is empty"),
])
def test_impossible_source_map_fails_the_dry_run(workflow_copy, source, message):
    root = workflow_copy
    write_config(root, "config/locations/noldo_example.csv", source=source)
    proc = snakemake(root, "-n", "--configfile", "acq.yaml", check=False)
    assert proc.returncode != 0 and message in proc.stdout + proc.stderr
