"""The serialised Earth Engine requests of one location and season, pinned by golden files.

The graphs are built by the real earthengine-api, initialised offline from the algorithm signatures
its wheel ships (ee/apitestcase.py); a change to a filter, the join, a band list or the grid shows here.
Regenerate after an intended change with EOLABELS_REGOLD=1.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import ee
import pytest

from eolabels.acquisition import earthengine as eeq
from eolabels.acquisition.noldo import NoldoSettings, location_grid, season_window
from eolabels.acquisition.sheets import Location
from eolabels.acquisition.transport import compute_body

GOLDEN = Path(__file__).parent / "golden"
LOC = Location("golden", -75.6237, 37.6755)
CFG = NoldoSettings()


def requests() -> dict[str, dict]:
    window = season_window(2021, *CFG.season_windows["summer"])
    grid = location_grid(LOC, CFG)
    return {
        "noldo_pairing": compute_body({"expression": eeq.noldo_pairing(LOC.lon, LOC.lat, window, CFG.cloud_max)}),
        "s1_nearest": compute_body({"expression": eeq.s1_nearest(LOC.lon, LOC.lat, 1625140800000, CFG.s1_max_days)}),
        "s2_pixels": compute_body(eeq.pixels_request(eeq.s2_pixels("20210701T155819_20210701T160611_T18SVG", "bilinear"), grid)),
        "dw_pixels": compute_body(eeq.pixels_request(eeq.dw_pixels("20210701T155819_20210701T160611_T18SVG"), grid)),
    }


@pytest.mark.parametrize("name", ["noldo_pairing", "s1_nearest", "s2_pixels", "dw_pixels"])
def test_serialised_request_matches_golden(replay, name):
    body = requests()[name]
    path = GOLDEN / f"{name}.json"
    if os.environ.get("EOLABELS_REGOLD"):
        path.write_text(json.dumps(body, indent=1, sort_keys=True) + "\n")
    assert body == json.loads(path.read_text())


def resolved(expression: dict) -> object:
    """The serialised graph with every value reference replaced by what it refers to."""
    values = expression["values"]

    def walk(node):
        if isinstance(node, dict):
            if set(node) == {"valueReference"}:
                return walk(values[node["valueReference"]])
            return {k: walk(v) for k, v in node.items()}
        return [walk(v) for v in node] if isinstance(node, list) else node
    return walk(values[expression["result"]])


def test_golden_pairing_says_what_the_spec_says(replay):
    text = json.dumps(resolved(requests()["noldo_pairing"]["expression"]))
    for fact in ("COPERNICUS/S2_HARMONIZED", "GOOGLE/DYNAMICWORLD/V1", "CLOUDY_PIXEL_PERCENTAGE", "Join.simple",
                 '"leftField": {"constantValue": "system:index"}', '"rightField": {"constantValue": "system:index"}',
                 "2021-06-01", "2021-09-01", '"Filter.lessThan"'):
        assert fact in text
    s2 = requests()["s2_pixels"]
    assert s2["grid"]["crsCode"] == "EPSG:32618" and s2["fileFormat"] == "GEO_TIFF"
    assert s2["grid"]["dimensions"] == {"width": 264, "height": 264}
    assert "B8A" in json.dumps(s2) and "B10" in json.dumps(s2)
    # decode the body back into the client's objects: a request the real library can read again
    assert isinstance(ee.deserializer.decode(requests()["dw_pixels"]["expression"]), ee.ComputedObject)
