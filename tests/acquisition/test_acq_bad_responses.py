"""Bad responses from Earth Engine: each fails only its location, with a message naming it, counted
in the manifest, the other location completed and nothing of the failed one written."""

from __future__ import annotations

import numpy as np
import pytest
from replay_world import (
    SCENE_PRODUCT, constructed_s1, error_body, geotiff_bytes, put_pixels, real_dw, real_s2, register_location,
)

from eolabels.acquisition import earthengine as eeq
from eolabels.acquisition.client import EarthEngineClient
from eolabels.acquisition.noldo import NoldoSettings, acquire_location, location_grid
from eolabels.acquisition.pool import Backoff, RateLimiter
from eolabels.acquisition.shards import run_shard
from eolabels.acquisition.sheets import Location
from eolabels.data.geotiff import GridSpec

CFG = NoldoSettings(tile_size=16, season_windows={"winter": ("12-01", "03-01")})
GOOD = Location("good", -75.6237, 37.6755, date="2015-01-12")
BAD = Location("bad", -75.5667, 37.6308, date="2015-01-12")
ATTEMPTS = 3


def shifted(grid: GridSpec, dx: float) -> GridSpec:
    t = grid.transform
    return GridSpec(grid.crs, (t[0], t[1], t[2] + dx, t[3], t[4], t[5]), grid.height, grid.width)


def run(store, seen, tmp_path, bad_dw: tuple[int, bytes]):
    for loc in (GOOD, BAD):
        grid = location_grid(loc, CFG)
        register_location(store, loc, CFG, s2=geotiff_bytes(real_s2(grid), grid), dw=None,
                          s1=geotiff_bytes(constructed_s1(grid), grid))
    grid = location_grid(GOOD, CFG)
    put_pixels(store, eeq.dw_pixels(SCENE_PRODUCT), grid, geotiff_bytes(np.ones((16, 16), "uint8"), grid))
    status, content = bad_dw
    put_pixels(store, eeq.dw_pixels(SCENE_PRODUCT), location_grid(BAD, CFG), content, status=status)
    client = EarthEngineClient(RateLimiter(600_000), Backoff(base=0.001, cap=0.002, attempts=ATTEMPTS))
    table = run_shard([GOOD, BAD], lambda loc, d: acquire_location(client, loc, CFG, d), tmp_path / "shard",
                      tmp_path / "summary.csv", workers=2)
    return table.set_index("id")


def dw_requests(seen, loc) -> int:
    x0 = location_grid(loc, CFG).transform[2]
    return sum(1 for endpoint, body in seen if endpoint == "image:computePixels"
               and body["grid"]["affineTransform"]["translateX"] == x0 and "DYNAMICWORLD" in str(body["expression"]))


def bad_cases():
    grid = location_grid(BAD, CFG)
    ones = np.ones((16, 16), "uint8")
    return {
        "429 storm": ((429, error_body(429, "Too many concurrent aggregations.")), ["HTTP 429", "gave up after 3"], ATTEMPTS),
        "500": ((500, error_body(500, "An internal error has occurred")), ["HTTP 500", "gave up after 3"], ATTEMPTS),
        "timeout": ((0, b""), ["TimeoutError", "gave up after 3"], ATTEMPTS),
        "400 no asset": ((400, error_body(400, "Image.load: Image asset 'x' not found.")),
                         ["HTTP 400", "Image asset 'x' not found"], 1),
        "wrong shape": ((200, geotiff_bytes(np.ones((8, 16), "uint8"),
                                            GridSpec(grid.crs, grid.transform, 8, 16))), ["shape 8x16, asked 16x16"], 1),
        "wrong crs": ((200, geotiff_bytes(ones, GridSpec("EPSG:32617", grid.transform, 16, 16))),
                      ["CRS EPSG:32617, asked EPSG:32618"], 1),
        "wrong transform": ((200, geotiff_bytes(ones, shifted(grid, 5.0))), ["transform"], 1),
        "wrong dtype": ((200, geotiff_bytes(ones.astype("float32"), grid)), ["dtype float32, asked uint8"], 1),
        "html page": ((200, b"<html><body>Service Unavailable</body></html>"), ["not a GeoTIFF", "<html>"], 1),
        "class ids": ((200, geotiff_bytes(np.full((16, 16), 10, "uint8"), grid)), ["class ids [10]"], 1),
    }


@pytest.mark.parametrize("case", list(bad_cases()))
def test_bad_response_fails_only_its_location(case, replay, scene, tmp_path):
    store, http, seen = replay
    response, words, attempts = bad_cases()[case]
    table = run(store, seen, tmp_path, response)
    assert table.loc["good", "status"] == "done"
    assert table.loc["bad", "status"] == "failed"
    reason = table.loc["bad", "reason"]
    assert "location bad winter dw" in reason
    for word in words:
        assert word in reason
    assert dw_requests(seen, BAD) == attempts  # retried only what is transient
    assert (tmp_path / "shard" / "samples" / "good" / "winter" / "dw.tif").is_file()
    assert not (tmp_path / "shard" / "samples" / "bad").exists()


def test_429_then_success_completes_after_backoff(replay, scene, tmp_path):
    store, http, seen = replay
    grid = location_grid(BAD, CFG)
    good_bytes = geotiff_bytes(real_dw(scene, grid), grid)
    calls = []

    def server(endpoint, body):  # the third DW request of BAD finds the quota free again
        if endpoint == "image:computePixels" and "DYNAMICWORLD" in str(body["expression"]) \
                and body["grid"]["affineTransform"]["translateX"] == grid.transform[2]:
            calls.append(1)
            if len(calls) == 3:
                put_pixels(store, eeq.dw_pixels(SCENE_PRODUCT), grid, good_bytes)
    http.on_request = lambda endpoint, body: (seen.append((endpoint, body)), server(endpoint, body))
    table = run(store, seen, tmp_path, (429, error_body(429, "Too many requests")))
    assert table.loc["bad", "status"] == "done" and len(calls) == 3
