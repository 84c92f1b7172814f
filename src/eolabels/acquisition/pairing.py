"""The authors' S1/S2 pairing for the downstream DW tiles (CromSS spec §9,
``get_sentinel12_ee_accord_xlsx_parallel_30d_bbox_{train,test}.py``), one named rule per function.

The client-side rules are pure functions on dates, listings and arrays; the server-side queries they
choose from are in :func:`s2_listing` / :func:`s1_listing` (real ``ee`` graphs).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date, timedelta

import ee
import numpy as np

from eolabels.acquisition.earthengine import S1_GRD, S2_BANDS, S2_L1C, Window, s1_iw_vv_vh
from eolabels.acquisition.sheets import DwTile

WINDOW_DAYS = 15
S2_CLOUD_MAX = 20.0
S2_MIN_UNIQUE = 13 * 9  # the authors reject an S2 tile with fewer distinct values
S1_MIN_UNIQUE = 18


def expert_tile_date(dw_id: str) -> date:
    """Training (expert) tiles: the date is the YYYYMMDD suffix of the dw_id."""
    found = re.search(r"(\d{8})$", dw_id)
    if not found:
        raise ValueError(f"tile {dw_id!r}: no YYYYMMDD suffix to take the date from (give a date column)")
    return date(int(found[1][:4]), int(found[1][4:6]), int(found[1][6:]))


def consensus_tile_date(s2_system_index: str) -> date:
    """Test (consensus) tiles: the date is the first 8 characters of the tile's ``s2_system_index``."""
    text = s2_system_index[:8]
    if not re.fullmatch(r"\d{8}", text):
        raise ValueError(f"s2_system_index {s2_system_index!r} does not start with YYYYMMDD")
    return date(int(text[:4]), int(text[4:6]), int(text[6:]))


def tile_date(tile: DwTile) -> date:
    """The pairing date of a tile: the sheet's date if given, else the split's rule above."""
    if tile.date:
        return date.fromisoformat(tile.date)
    if tile.split == "test" and tile.s2_system_index:
        return consensus_tile_date(tile.s2_system_index)
    return expert_tile_date(tile.dw_id)


def s2_windows(day: date) -> list[Window]:
    """[date, date + 15 d), then [date − 15 d, date): 30 days in total, the later half first."""
    d = timedelta(days=WINDOW_DAYS)
    return [Window(day.isoformat(), (day + d).isoformat()), Window((day - d).isoformat(), day.isoformat())]


def s1_windows(s2_day: date) -> list[tuple[Window, str]]:
    """S1 windows after the S2 date: [d, d + 15 d] taking the most recent image, then
    [d − 15 d, d] taking the first image in the tile's CRS (else the first image).
    The windows include their end day (``filterDate`` is end-exclusive, hence + 1 day)."""
    d, one = timedelta(days=WINDOW_DAYS), timedelta(days=1)
    return [(Window(s2_day.isoformat(), (s2_day + d + one).isoformat()), "most_recent"),
            (Window((s2_day - d).isoformat(), (s2_day + one).isoformat()), "first_in_crs")]


def first_with_crs(listing: Sequence[Sequence], epsg: int) -> str | None:
    """The first image of a ``[[system:index, crs, …], …]`` listing whose band CRS is the tile's."""
    want = f"EPSG:{epsg}"
    return next((row[0] for row in listing if row[1] == want), None)


def pick_s1(listing: Sequence[Sequence], rule: str, epsg: int) -> str | None:
    """The S1 image of one window by its rule (listing already in the window's sort order)."""
    if not listing:
        return None
    if rule == "most_recent":
        return listing[0][0]
    return first_with_crs(listing, epsg) or listing[0][0]


def enough_unique_values(array: np.ndarray, minimum: int) -> bool:
    """The authors' check against blank or saturated tiles: at least ``minimum`` distinct values."""
    return len(np.unique(array)) >= minimum


def tile_rectangle(tile: DwTile) -> ee.Geometry:
    left, bottom, right, top = tile.bounds
    return ee.Geometry.Rectangle([left, bottom, right, top], f"EPSG:{tile.epsg}", False)


def s2_listing(tile: DwTile, window: Window) -> ee.Dictionary:
    """S2 L1C images over the tile in ``window`` below 20 % cloud, in collection order, as
    ``{"list": [[system:index, B2 CRS, time_start], …]}``."""
    coll = (ee.ImageCollection(S2_L1C).filterBounds(tile_rectangle(tile)).filterDate(window.start, window.end)
            .filter(ee.Filter.lt("CLOUDY_PIXEL_PERCENTAGE", S2_CLOUD_MAX)))
    with_crs = coll.map(lambda im: im.set("b2_crs", im.select("B2").projection().crs()))
    return ee.Dictionary(with_crs.reduceColumns(ee.Reducer.toList(3), ["system:index", "b2_crs", "system:time_start"]))


def s1_listing(tile: DwTile, window: Window, rule: str) -> ee.Dictionary:
    """S1 GRD IW VV/VH images over the tile in ``window`` (newest first for ``most_recent``), as
    ``{"list": [[system:index, VV CRS], …]}``."""
    coll = s1_iw_vv_vh(tile_rectangle(tile)).filterDate(window.start, window.end)
    if rule == "most_recent":
        coll = coll.sort("system:time_start", False)
    with_crs = coll.map(lambda im: im.set("vv_crs", im.select("VV").projection().crs()))
    return ee.Dictionary(with_crs.reduceColumns(ee.Reducer.toList(2), ["system:index", "vv_crs"]))


def s2_tile_pixels(system_index: str) -> ee.Image:
    """The 13 bands, bilinear onto the request grid (the authors: toFloat, bilinear, B2 projection)."""
    return ee.Image(f"{S2_L1C}/{system_index}").select(list(S2_BANDS)).toFloat().resample("bilinear").toUint16()


def s1_tile_pixels(system_index: str) -> ee.Image:
    """VV, VH in dB, bilinear onto the request grid, float32."""
    return ee.Image(f"{S1_GRD}/{system_index}").select(["VV", "VH"]).resample("bilinear").toFloat()
