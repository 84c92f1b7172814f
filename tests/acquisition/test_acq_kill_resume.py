"""`--rerun-incomplete` after a kill leaves no half-written tile: the acquisition (real Snakemake, real
client, replay transport with a simulated latency so a shard job lives long enough to be killed) is
killed with SIGKILL while a shard job writes, unlocked and rerun; the merged dataset equals an
uninterrupted run's, every GeoTIFF opens and no temporary is left under results/."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
import yaml
from replay_world import real_dw, register_good_and_partial
from workflow_helpers import snakemake

from eolabels.acquisition.noldo import NoldoSettings, location_grid
from eolabels.acquisition.sheets import Location
from eolabels.acquisition.transport import ResponseStore

pytestmark = pytest.mark.slow
GOOD = Location("good", -75.6237, 37.6755, date="2016-01-12")
PARTIAL = Location("partial", -75.5667, 37.6308, date="2016-01-12")
CFG = NoldoSettings(tile_size=16)
TARGET = "results/data/noldo_raw/index.csv"
LATENCY_S = 0.2  # per request; the good location makes 20 requests in a row, so its job lives ~4 s


def write_config(root: Path) -> list[str]:
    config = {"source": {"noldo": "earthengine"}, "earthengine": {
        "transport": "replay", "responses": "responses", "replay_latency_s": LATENCY_S, "shards": 2,
        "workers": 2, "backoff": {"base_s": 0.01, "cap_s": 0.02, "attempts": 2},
        "noldo": {"sheet": "config/locations/k.csv", "tile_size": 16},
    }}
    (root / "acq.yaml").write_text(yaml.safe_dump(config))
    return ["--configfile", "acq.yaml"]


def leftovers(results: Path) -> list[Path]:
    """Files an interrupted writer leaves: atomic_path's hidden temporaries and the usual partial names."""
    return [p for p in results.rglob("*") if p.is_file()
            and (p.name.startswith(".") or p.suffix in (".tmp", ".part", ".partial") or p.name.endswith("~"))]


def kill_inside_atomic_write(path: Path) -> None:
    """A real writer SIGKILLed half-way through an atomic write: what a kill mid-tile leaves behind."""
    code = ("import os, signal, sys\nfrom eolabels.atomic import atomic_path\n"
            "with atomic_path(sys.argv[1]) as tmp:\n"
            "    tmp.write_bytes(b'II*\\x00' + bytes(100))\n"
            "    os.kill(os.getpid(), signal.SIGKILL)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr


def pixels(path: Path) -> tuple:
    with rasterio.open(path) as ds:
        return ds.read().tobytes(), ds.dtypes, ds.crs.to_epsg(), tuple(ds.transform), ds.descriptions


def test_kill_then_rerun_incomplete_equals_an_uninterrupted_run(workflow_copy, replay, scene):
    root = workflow_copy
    store = ResponseStore(root / "responses")
    register_good_and_partial(store, GOOD, PARTIAL, CFG, scene)
    (root / "config/locations/k.csv").write_text(
        "id,lon,lat,date\ngood,-75.6237,37.6755,2016-01-12\npartial,-75.5667,37.6308,2016-01-12\n")
    args = write_config(root)

    # the uninterrupted run, kept aside as the reference
    snakemake(root, TARGET, *args)
    (root / "results").rename(root / "reference")

    # the same run, SIGKILLed (snakemake and its jobs, one process group) once the good location's shard
    # job wrote its first tile (the partial location's short job may be done or not)
    with open(root / "killed.out", "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "snakemake", "--cores", "2", TARGET, *args],
                                cwd=root, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    shards = root / "results/acquisition/noldo/shards"
    good = shards / "0/samples/good"
    deadline = time.monotonic() + 60
    while not (good.is_dir() and any(good.rglob("*.tif"))):
        assert proc.poll() is None, f"the run ended before any tile was written:\n{(root / 'killed.out').read_text()}"
        assert time.monotonic() < deadline, "no tile written within 60 s"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert not (root / TARGET).exists()
    assert not (shards / "0.csv").exists(), "the good location's shard job had finished: the kill came too late"
    # what a kill in the middle of a tile's write leaves (its temporary), in a shard and in the merged dataset
    kill_inside_atomic_write(good / "autumn/s2.tif")
    kill_inside_atomic_write(root / "results/data/noldo_raw/samples/good/autumn/s2.tif")
    assert len(leftovers(root / "results")) >= 2

    locked = snakemake(root, TARGET, *args, check=False)
    # refused: the killed run's lock, or its incomplete output, depending on where the kill fell
    assert locked.returncode != 0 and ("--unlock" in locked.stderr or "--rerun-incomplete" in locked.stderr)
    snakemake(root, "--unlock", *args)
    snakemake(root, TARGET, "--rerun-incomplete", *args)

    # the merged dataset equals the uninterrupted run's: index rows, metadata and pixel bytes
    ref, got = root / "reference/data/noldo_raw", root / "results/data/noldo_raw"
    key = ["id", "season"]
    pd.testing.assert_frame_equal(pd.read_csv(got / "index.csv").sort_values(key, ignore_index=True),
                                  pd.read_csv(ref / "index.csv").sort_values(key, ignore_index=True))
    assert json.loads((got / "dataset.json").read_text()) == json.loads((ref / "dataset.json").read_text())
    ref_tifs = sorted(p.relative_to(ref) for p in ref.rglob("*.tif"))
    assert ref_tifs == sorted(p.relative_to(got) for p in got.rglob("*.tif")) and len(ref_tifs) == 3 * 5
    for rel in ref_tifs:
        assert pixels(got / rel) == pixels(ref / rel), rel
    # and what the rows point at is the real scene's pixels, not merely equal files
    index = pd.read_csv(got / "index.csv")
    winter = index[(index["id"] == "good") & (index["season"] == 3)].iloc[0]
    with rasterio.open(got / winter["dw"]) as ds:
        np.testing.assert_array_equal(ds.read(1), real_dw(scene, location_grid(GOOD, CFG)))

    # every GeoTIFF under results/ opens and reads; nothing temporary or partial is left anywhere
    for tif in (root / "results").rglob("*.tif"):
        with rasterio.open(tif) as ds:
            ds.read()
    assert leftovers(root / "results") == []
    assert "left by a killed run" in (root / "logs/acquire_shard/noldo/0.log").read_text()
    assert "left by a killed run" in (root / "logs/merge_shards/noldo_raw.log").read_text()
    assert not any((root / ".snakemake/incomplete").rglob("*"))
    shutil.rmtree(root / "reference")
