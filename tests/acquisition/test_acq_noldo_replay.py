"""NoLDO-S12 acquisition through the real Earth Engine client, transport replayed at one seam.

The expression graphs, REST bodies and error translation are the real earthengine-api's; responses
are real GeoTIFF bytes cut from the 18SVG scene (S2, DW) or constructed (S1, errors).
"""

from __future__ import annotations

import numpy as np
import pytest
from replay_world import (SCENE_PRODUCT, geotiff_bytes, put_pixels, real_dw, real_s2, register_good_and_partial,
                          register_location)

from eolabels.acquisition import earthengine as eeq
from eolabels.acquisition.client import EarthEngineClient
from eolabels.acquisition.noldo import NoldoSettings, acquire_location, location_grid, noldo_meta
from eolabels.acquisition.pool import Backoff, RateLimiter
from eolabels.acquisition.shards import merge_shards, run_shard
from eolabels.acquisition.sheets import Location
from eolabels.acquisition.transport import RecordingHttp, ReplayHttp, ResponseStore
from eolabels.data.geotiff import GridSpec
from eolabels.data.index import DatasetIndex
from eolabels.data.readers import TileReader

CFG = NoldoSettings(tile_size=32)
GOOD = Location("good", -75.6237, 37.6755, date="2016-01-12")
PARTIAL = Location("partial", -75.5667, 37.6308, date="2016-01-12")
SEA = Location("sea", -40.0, 30.0, date="2016-01-12")


def client() -> EarthEngineClient:
    return EarthEngineClient(RateLimiter(60_000), Backoff(base=0.001, cap=0.002, attempts=3))


@pytest.fixture
def world(replay, scene):
    store, http, seen = replay
    register_good_and_partial(store, GOOD, PARTIAL, CFG, scene)
    register_location(store, SEA, CFG, s2=None, dw=None, s1=None, seasons=(), s2_count=0)
    return store, seen


def test_shard_writes_real_pixels_and_merge_builds_the_dataset(world, scene, tmp_path):
    store, seen = world
    shard = tmp_path / "shard0"
    table = run_shard([GOOD, PARTIAL, SEA], lambda loc, d: acquire_location(client(), loc, CFG, d), shard,
                      tmp_path / "shard0.csv", workers=2)
    status = dict(zip(table["id"], table["status"]))
    assert status == {"good": "done", "partial": "done", "sea": "failed"}
    sea = table.set_index("id").loc["sea"]
    assert "location sea" in sea["reason"] and "no Sentinel-2 L1C image" in sea["reason"]
    partial = table.set_index("id").loc["partial"]
    assert partial["seasons"] == "winter" and "spring: none of 3 Sentinel-2 products" in partial["missing"]
    assert not (shard / "samples" / "sea").exists()
    # good: 4 seasons × (pairing + s1 query + 3 pixel requests); partial: 4 pairings, then winter's
    # s1 query + 3 pixel requests; sea: 4 pairings
    assert len(seen) == 4 * 5 + (4 + 1 + 3) + 4
    counts = merge_shards([GOOD, PARTIAL, SEA], [shard], noldo_meta(), tmp_path / "noldo")
    assert counts == {"written": 2, "incomplete": 1, "failed": 1}
    index = DatasetIndex.open(tmp_path / "noldo")  # partial's winter too: the assembly drops it, saying why
    assert sorted(zip(index.table["id"], index.table["season"])) == [("good", s) for s in range(4)] + [("partial", 3)]
    winter = int(np.flatnonzero((index.table["season"] == 3) & (index.table["id"] == "good"))[0])
    grid = location_grid(GOOD, CFG)
    tiles = TileReader(index).read(winter, ["dw", "s2", "s1"])
    np.testing.assert_array_equal(tiles["dw"][0], real_dw(scene, grid))
    np.testing.assert_array_equal(tiles["s2"], real_s2(grid))
    assert tiles["s1"].dtype == np.float32 and tiles["s1"].shape == (2, 32, 32)
    assert index.grid(index.table.iloc[winter]) == grid


def test_rerun_fetches_only_what_is_missing(world, tmp_path):
    store, seen = world
    shard = tmp_path / "shard0"
    run_shard([GOOD, SEA], lambda loc, d: acquire_location(client(), loc, CFG, d), shard, tmp_path / "s.csv", workers=1)
    first = len(seen)
    run_shard([GOOD, SEA], lambda loc, d: acquire_location(client(), loc, CFG, d), shard, tmp_path / "s.csv", workers=1)
    assert len(seen) - first == 4  # only the failed sea location's 4 pairing queries again


def test_request_grid_is_the_tile_grid():
    grid = location_grid(GOOD, CFG)
    body = eeq.grid_request(grid)
    assert grid.crs == "EPSG:32618"
    assert body["affineTransform"]["scaleX"] == 10.0 and body["affineTransform"]["scaleY"] == -10.0
    assert body["affineTransform"]["translateX"] % 10 == 0 and body["dimensions"] == {"width": 32, "height": 32}


def test_season_without_s1_keeps_s2_and_dw(replay, scene, tmp_path):
    store, http, seen = replay
    grid = location_grid(GOOD, CFG)
    register_location(store, GOOD, CFG, s2=geotiff_bytes(real_s2(grid), grid),
                      dw=geotiff_bytes(real_dw(scene, grid), grid), s1=None)
    done = acquire_location(client(), GOOD, CFG, tmp_path)
    assert done.seasons == ["spring", "summer", "autumn", "winter"]
    assert set(done.missing) == {f"{s}/s1" for s in done.seasons} and "no Sentinel-1" in done.missing["winter/s1"]
    assert all(row["s1"] == "" and row["s2"].endswith("s2.tif") for row in done.rows)


def test_record_then_replay_offline(world, scene, tmp_path):
    """Record mode stores every compute response the location needs (here the inner transport is the
    replay of the world's store standing in for the network); a replay of the recording alone then
    rebuilds the same location."""
    store, seen = world
    recorded = ResponseStore(tmp_path / "recorded")
    eeq.initialize_offline(RecordingHttp(ReplayHttp(store), recorded))
    first = acquire_location(client(), GOOD, CFG, tmp_path / "live")
    # distinct requests: a pairing per season window; every season pairs with the same scene, so its S1
    # query and its S2, DW and S1 pixel requests repeat
    assert len(list(recorded.root.glob("*.json"))) == 4 + 1 + 3
    eeq.initialize_offline(ReplayHttp(recorded))
    again = acquire_location(client(), GOOD, CFG, tmp_path / "replayed")
    assert again.seasons == first.seasons == ["spring", "summer", "autumn", "winter"]
    for row in first.rows:
        for layer in ("s2", "dw", "s1"):
            a = (tmp_path / "live" / row[layer]).read_bytes()
            assert a == (tmp_path / "replayed" / row[layer]).read_bytes()


def test_a_request_over_the_size_limit_goes_in_row_strips(replay, scene):
    """32 rows of 13 uint16 bands are 26,624 B; under a 9,000 B limit the client asks for 10 + 10 + 10
    + 2 rows, each on its own strip grid, and stitches the real S2 pixels back in place."""
    store, http, seen = replay
    grid = location_grid(GOOD, CFG)
    rows_seen = []
    for first, height in ((0, 10), (10, 10), (20, 10), (30, 2)):
        t = grid.transform
        strip = GridSpec(grid.crs, (t[0], t[1], t[2], t[3], t[4], t[5] + t[4] * first), height, grid.width)
        put_pixels(store, eeq.s2_pixels(SCENE_PRODUCT, CFG.resample), strip, geotiff_bytes(real_s2(strip), strip))
        rows_seen.append(strip.transform[5])
    limited = EarthEngineClient(RateLimiter(60_000), Backoff(base=0.001, cap=0.002, attempts=1), bytes_limit=9_000)
    pixels = limited.pixels(eeq.s2_pixels(SCENE_PRODUCT, CFG.resample), grid, 13, "uint16", "good s2")
    np.testing.assert_array_equal(pixels, real_s2(grid))
    asked = [body["grid"]["affineTransform"]["translateY"] for endpoint, body in seen if endpoint == "image:computePixels"]
    assert asked == rows_seen
