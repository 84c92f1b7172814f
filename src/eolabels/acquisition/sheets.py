"""Location sheets: CSV tables that say where to acquire, validated row by row.

Two kinds (the snakemake-workflows sample-sheet pattern):

* ``locations``: ``id, lon, lat`` and optionally ``tile_size`` (px), ``crs`` (``EPSG:<code>``; default
  the local UTM zone), ``date`` (``YYYY-MM-DD``, the year whose seasons are fetched) and ``split``;
* ``dw_tiles``: the Dynamic World expert / consensus tile lists of CromSS spec §9: ``dw_id, epsg,
  left, bottom, right, top`` (tile CRS), ``date`` or ``s2_system_index``, and ``split``.

A malformed sheet fails with the file, the row number (1-based, after the header) and the problem.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

LOCATION_COLUMNS = ("id", "lon", "lat")
LOCATION_OPTIONAL = ("tile_size", "crs", "date", "split")
DW_TILE_COLUMNS = ("dw_id", "epsg", "left", "bottom", "right", "top", "split")
DW_TILE_OPTIONAL = ("date", "s2_system_index", "height", "width")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_CRS = re.compile(r"^EPSG:[0-9]{4,5}$")


class SheetError(ValueError):
    """A location sheet is malformed; the message names the file and the row."""


@dataclass(frozen=True)
class Location:
    """One row of a locations sheet (a NoLDO-S12 location, a DW tile or an OSM tile)."""

    id: str
    lon: float
    lat: float
    tile_size: int | None = None
    crs: str | None = None
    date: str | None = None
    split: str = "train"


@dataclass(frozen=True)
class DwTile:
    """One row of a DW expert / consensus tile list (bounds in the tile's CRS)."""

    dw_id: str
    epsg: int
    bounds: tuple[float, float, float, float]
    split: str
    date: str | None = None
    s2_system_index: str | None = None
    height: int | None = None
    width: int | None = None

    @property
    def id(self) -> str:
        return self.dw_id


def _read(path: str | os.PathLike[str], required: tuple[str, ...], optional: tuple[str, ...]) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise SheetError(f"{path}: sheet does not exist")
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.EmptyDataError, pd.errors.ParserError) as err:
        raise SheetError(f"{path}: not a readable CSV sheet ({err})") from err
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise SheetError(f"{path}: missing columns {missing} (required {list(required)}, optional {list(optional)})")
    unknown = [c for c in table.columns if c not in required + optional]
    if unknown:
        raise SheetError(f"{path}: unknown columns {unknown} (allowed {list(required + optional)})")
    if table.empty:
        raise SheetError(f"{path}: sheet has no rows")
    return table


def _number(path: Path, row: int, column: str, text: str, low: float, high: float) -> float:
    try:
        value = float(text)
    except ValueError:
        raise SheetError(f"{path}: row {row}: {column} {text!r} is not a number") from None
    if not np.isfinite(value) or not low <= value <= high:
        raise SheetError(f"{path}: row {row}: {column} {text!r} is out of range [{low}, {high}]")
    return value


def _date(path: Path, row: int, text: str) -> str | None:
    if not text:
        return None
    try:
        return pd.Timestamp(text).strftime("%Y-%m-%d")
    except ValueError:
        raise SheetError(f"{path}: row {row}: date {text!r} is not a date (YYYY-MM-DD)") from None


def _check_ids(path: Path, ids: list[str], column: str) -> None:
    seen: dict[str, int] = {}
    for row, value in enumerate(ids, start=1):
        if not _ID.match(value):
            raise SheetError(f"{path}: row {row}: {column} {value!r} must be letters, digits, '_', '-', '.'")
        if value in seen:
            raise SheetError(f"{path}: row {row}: duplicate {column} {value!r} (first at row {seen[value]})")
        seen[value] = row


def read_locations(path: str | os.PathLike[str]) -> list[Location]:
    """A validated locations sheet."""
    path = Path(path)
    table = _read(path, LOCATION_COLUMNS, LOCATION_OPTIONAL)
    _check_ids(path, list(table["id"]), "id")
    out = []
    for row, rec in enumerate(table.to_dict("records"), start=1):
        size = rec.get("tile_size", "")
        crs = rec.get("crs", "")
        if crs and not _CRS.match(crs):
            raise SheetError(f"{path}: row {row}: crs {crs!r} must look like EPSG:32633")
        out.append(Location(
            id=rec["id"],
            lon=_number(path, row, "lon", rec["lon"], -180, 180),
            lat=_number(path, row, "lat", rec["lat"], -90, 90),
            tile_size=int(_number(path, row, "tile_size", size, 1, 100_000)) if size else None,
            crs=crs or None,
            date=_date(path, row, rec.get("date", "")),
            split=rec.get("split", "") or "train",
        ))
    return out


def read_dw_tiles(path: str | os.PathLike[str]) -> list[DwTile]:
    """A validated DW expert / consensus tile list (spec §9 ``0-get_center_void_coords_*``)."""
    path = Path(path)
    table = _read(path, DW_TILE_COLUMNS, DW_TILE_OPTIONAL)
    _check_ids(path, list(table["dw_id"]), "dw_id")
    out = []
    for row, rec in enumerate(table.to_dict("records"), start=1):
        epsg = int(_number(path, row, "epsg", rec["epsg"], 1024, 32767))
        left, bottom, right, top = (float(_number(path, row, k, rec[k], -2e7, 2e7)) for k in ("left", "bottom", "right", "top"))
        if not (left < right and bottom < top):
            raise SheetError(f"{path}: row {row}: bounds {left, bottom, right, top} are empty or inverted")
        date, index = rec.get("date", ""), rec.get("s2_system_index", "")
        if not date and not index:
            raise SheetError(f"{path}: row {row}: needs a date or an s2_system_index (spec §9 pairing date)")
        out.append(DwTile(
            dw_id=rec["dw_id"], epsg=epsg, bounds=(left, bottom, right, top), split=rec["split"] or "train",
            date=_date(path, row, date), s2_system_index=index or None,
            height=int(rec["height"]) if rec.get("height") else None,
            width=int(rec["width"]) if rec.get("width") else None,
        ))
    return out


def region_polygon(geojson: dict) -> list[tuple[float, float]]:
    """The outer ring (lon, lat) of a GeoJSON Polygon, Feature or one-feature FeatureCollection, or a
    bbox ``[w, s, e, n]``: a ``{"bbox": ...}`` object, or a Feature whose geometry is null."""
    node = geojson
    if node.get("type") == "FeatureCollection":
        if len(node.get("features", [])) != 1:
            raise SheetError("region: a FeatureCollection must hold exactly one feature")
        node = node["features"][0]
    if node.get("type") == "Feature":
        node = node.get("geometry") or {"bbox": node.get("bbox")}
    if "bbox" in node and node.get("type") is None:
        box = node["bbox"]
        if not (isinstance(box, list) and len(box) == 4 and box[0] < box[2] and box[1] < box[3]):
            raise SheetError(f"region: bbox {box!r} is not [west, south, east, north] with west < east, south < north")
        w, s, e, n = box
        return [(w, s), (e, s), (e, n), (w, n), (w, s)]
    if node.get("type") != "Polygon":
        raise SheetError(f"region: want a Polygon or a bbox, got {node.get('type')!r}")
    return [(float(x), float(y)) for x, y in node["coordinates"][0]]


def inside(ring: list[tuple[float, float]], lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Even-odd point-in-polygon test of (lon, lat) points against a ring."""
    result = np.zeros(lon.shape, dtype=bool)
    for (x1, y1), (x2, y2) in zip(ring[:-1], ring[1:]):
        crosses = (y1 > lat) != (y2 > lat)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_at = x1 + (lat - y1) * (x2 - x1) / (y2 - y1)
        result ^= crosses & (lon < x_at)
    return result


def sample_locations(geojson: dict, n: int, seed: int, prefix: str = "loc") -> pd.DataFrame:
    """``n`` locations drawn uniformly on the sphere inside a region (rejection sampling), as a sheet.

    Uniform in area, not in degrees (sin(lat) uniform), so a large region is not over-sampled near
    the pole.
    """
    ring = region_polygon(geojson)
    lons, lats = np.array([p[0] for p in ring]), np.array([p[1] for p in ring])
    rng = np.random.default_rng(seed)
    s_lo, s_hi = np.sin(np.radians(lats.min())), np.sin(np.radians(lats.max()))
    got_lon: list[float] = []
    got_lat: list[float] = []
    for _ in range(1000):
        lon = rng.uniform(lons.min(), lons.max(), 4 * n)
        lat = np.degrees(np.arcsin(rng.uniform(s_lo, s_hi, 4 * n)))
        keep = inside(ring, lon, lat)
        got_lon.extend(lon[keep])
        got_lat.extend(lat[keep])
        if len(got_lon) >= n:
            break
    else:
        raise SheetError("region: no points fall inside the polygon (is its ring closed and non-degenerate?)")
    width = len(str(n - 1))
    return pd.DataFrame({
        "id": [f"{prefix}{i:0{width}d}" for i in range(n)],
        "lon": np.round(got_lon[:n], 6),
        "lat": np.round(got_lat[:n], 6),
    })


def read_region(path: str | os.PathLike[str]) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise SheetError(f"{path}: not a readable GeoJSON region ({err})") from err
