"""NoLDO-S12 acquisition of one location: 4 seasons of S2 L1C + DW V1 (same product) + S1 GRD.

Per season (CromSS §II-A, SSL4EO-S12's 4 date windows): the least-cloudy S2 L1C image that has a
Dynamic World image of the same product, its DW labels, and the S1 IW VV/VH image nearest in time,
all on the location's 264 × 264, 10 m local-UTM grid. A season without such a pair is recorded as
missing (the merge's 4-season rule then drops the location, as the authors kept only locations with
DW labels in all 4 seasons); a location with none at all fails, naming it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from eolabels.acquisition import earthengine as eeq
from eolabels.acquisition.client import EarthEngineClient
from eolabels.acquisition.grids import tile_grid
from eolabels.acquisition.manifest import Acquired
from eolabels.acquisition.pool import LocationFailed
from eolabels.acquisition.sheets import Location
from eolabels.data.geotiff import GridSpec
from eolabels.data.index import DatasetMeta
from eolabels.data.kinds import NOLDO, S1, S2, label_layer
from eolabels.data.writer import DatasetWriter

DW_LABEL = label_layer("dw")


@dataclass(frozen=True)
class NoldoSettings:
    """What one NoLDO-S12 location request depends on (config ``earthengine.noldo``)."""

    year: int = 2021
    season_windows: dict[str, tuple[str, str]] = field(default_factory=lambda: {
        "spring": ("03-01", "06-01"), "summer": ("06-01", "09-01"),
        "autumn": ("09-01", "12-01"), "winter": ("12-01", "03-01"),
    })
    cloud_max: float = 20.0
    tile_size: int = 264
    resolution: float = 10.0
    s1_max_days: int = 15
    resample: str = "bilinear"


def season_window(year: int, start: str, end: str) -> eeq.Window:
    """[year-start, end) with ``end`` in the next year when it falls before ``start`` (winter)."""
    end_year = year + 1 if end <= start else year
    return eeq.Window(f"{year}-{start}", f"{end_year}-{end}")


@dataclass(frozen=True)
class SeasonPick:
    """The products chosen for one season (``s1`` None when no S1 image is near enough)."""

    s2: str
    cloud: float
    time_ms: int
    s1: str | None


def pick_season(client: EarthEngineClient, loc: Location, window: eeq.Window, cfg: NoldoSettings,
                where: str) -> SeasonPick | str:
    """The season's products, or the reason it is missing."""
    result = client.value(eeq.noldo_pairing(loc.lon, loc.lat, window, cfg.cloud_max), where)
    if not result["s2_count"]:
        return f"no Sentinel-2 L1C image below {cfg.cloud_max:g} % cloud in {window.start}..{window.end}"
    if not result["best"]:
        return f"none of {result['s2_count']} Sentinel-2 products has a Dynamic World image"
    index, cloud, time_ms = result["best"][0]
    near = client.value(eeq.s1_nearest(loc.lon, loc.lat, int(time_ms), cfg.s1_max_days), f"{where} s1")
    s1 = near["list"][0][0] if near.get("list") else None
    return SeasonPick(s2=index, cloud=float(cloud), time_ms=int(time_ms), s1=s1)


def location_grid(loc: Location, cfg: NoldoSettings) -> GridSpec:
    return tile_grid(loc.lon, loc.lat, loc.tile_size or cfg.tile_size, cfg.resolution, loc.crs)


def noldo_meta() -> DatasetMeta:
    """The ``dataset.json`` of an acquired NoLDO-S12 set: S2, S1 (optional per season) and DW labels."""
    return NOLDO.meta(source="earthengine", layers=["s2", "s1", "dw"],
                      description="NoLDO-S12 acquired through Earth Engine: S2 L1C, S1 GRD and DW V1 of the same S2 product")


def acquire_location(client: EarthEngineClient, loc: Location, cfg: NoldoSettings,
                     out_dir: str | os.PathLike[str], meta: DatasetMeta | None = None) -> Acquired:
    """Fetch one location's seasons and write them under ``out_dir/samples/<id>/<season>/`` through
    :class:`DatasetWriter` (the dataset's layout, label checks and colours).

    Every file is written atomically; the location counts as done only once the caller records it in
    the manifest, so a kill mid-location leaves whole files that the rerun overwrites.
    """
    meta = meta or noldo_meta()
    grid = location_grid(loc, cfg)
    year = int(loc.date[:4]) if loc.date else cfg.year
    picks: dict[str, SeasonPick] = {}
    missing: dict[str, str] = {}
    for season, (start, end) in cfg.season_windows.items():
        where = f"location {loc.id} {season}"
        pick = pick_season(client, loc, season_window(year, start, end), cfg, where)
        if isinstance(pick, str):
            missing[season] = pick
        else:
            picks[season] = pick
    if not picks:
        reasons = "; ".join(f"{s}: {r}" for s, r in missing.items())
        raise LocationFailed(f"location {loc.id} ({loc.lon}, {loc.lat}): no season has data ({reasons})")
    layers: dict[str, dict[str, np.ndarray]] = {}
    for season, pick in picks.items():
        where = f"location {loc.id} {season}"
        layers[season] = {
            "s2": client.pixels(eeq.s2_pixels(pick.s2, cfg.resample), grid, len(S2.bands), S2.dtype, f"{where} s2"),
            "dw": client.pixels(eeq.dw_pixels(pick.s2), grid, 1, DW_LABEL.dtype, f"{where} dw"),
        }
        if pick.s1 is not None:
            layers[season]["s1"] = client.pixels(eeq.s1_pixels(pick.s1, cfg.resample), grid, len(S1.bands),
                                                 S1.dtype, f"{where} s1")
        else:  # S1 is optional in the contract: the season stays, its gap is recorded
            missing[f"{season}/s1"] = f"no Sentinel-1 IW VV/VH image within {cfg.s1_max_days} days of the S2 image"
        bad = layers[season]["dw"][layers[season]["dw"] > 8]
        if bad.size:
            raise LocationFailed(f"{where} dw: class ids {sorted(set(bad.tolist()))[:5]} outside Dynamic World's 0-8")
    # write only after every season arrived, so a failed location leaves nothing behind
    writer = DatasetWriter(out_dir, meta)
    for season, arrays in layers.items():
        writer.add(loc.id, loc.split, meta.seasons.index(season), grid, arrays)
    return Acquired(list(picks), missing, writer.rows)
