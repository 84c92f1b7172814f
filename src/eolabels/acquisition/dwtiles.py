"""Downstream tiles (SSL4EO-S12@DW / @OSM): S1/S2 through Earth Engine by the authors' pairing
(:mod:`.pairing`), labels from the expert tile files (DW) and from the WMS (OSM).

Each tile's pixels are requested on the tile's own grid (its CRS and bounds from the sheet), so the
authors' resize of a mis-shaped ``sampleRectangle`` is never needed: a response of another shape is an
error (:func:`.client.decode_geotiff`).
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from eolabels.acquisition import pairing
from eolabels.acquisition.client import EarthEngineClient
from eolabels.acquisition.grids import bounds_grid
from eolabels.acquisition.manifest import Acquired
from eolabels.acquisition.pool import LocationFailed, with_retries
from eolabels.acquisition.sheets import DwTile
from eolabels.acquisition.wms import OsmWms
from eolabels.data.geotiff import GridSpec, RasterError, read_geotiff
from eolabels.data.index import DatasetMeta
from eolabels.data.kinds import DW, OSM, S1, S2
from eolabels.data.writer import DatasetWriter
from eolabels.tables import load_mapping, lookup_table


@dataclass(frozen=True)
class TileSettings:
    """Config ``earthengine.dw_tiles``."""

    resolution: float = 10.0
    label_dir: str = ""  # expert / consensus label GeoTIFFs, <label_dir>/<dw_id>.tif; "" = none


def expert_labels(tile: DwTile, grid: GridSpec, label_dir: str) -> np.ndarray | None:
    """The tile's expert DW labels remapped to DW ids (``dw_expert_to_dw``), or None without a folder."""
    if not label_dir:
        return None
    path = Path(label_dir) / f"{tile.dw_id}.tif"
    try:
        data, got, _ = read_geotiff(path, expect=grid)
    except RasterError as err:
        raise LocationFailed(f"tile {tile.dw_id}: expert labels: {err}") from None
    band = data[1] if data.shape[0] > 1 else data[0]  # spec §6: a multi-band label tif → band index 1
    return lookup_table(load_mapping("dw_expert_to_dw"))[band]


def pick_s2(client: EarthEngineClient, tile: DwTile) -> tuple[str, int]:
    """The S2 product of a tile (system:index, time_start ms) by the authors' window and CRS rules."""
    listing: list = []
    for window in pairing.s2_windows(pairing.tile_date(tile)):
        listing = client.value(pairing.s2_listing(tile, window), f"tile {tile.dw_id} s2 {window.start}").get("list") or []
        if listing:
            break
    if not listing:
        raise LocationFailed(f"tile {tile.dw_id}: no Sentinel-2 L1C image below {pairing.S2_CLOUD_MAX:g} % cloud "
                             f"within ±{pairing.WINDOW_DAYS} days of {pairing.tile_date(tile)}")
    chosen = pairing.first_with_crs(listing, tile.epsg)
    if chosen is None:
        raise LocationFailed(f"tile {tile.dw_id}: none of {len(listing)} Sentinel-2 images is in the tile's CRS EPSG:{tile.epsg}")
    time_ms = next(int(row[2]) for row in listing if row[0] == chosen)
    return chosen, time_ms


def pick_s1(client: EarthEngineClient, tile: DwTile, s2_time_ms: int) -> str | None:
    """The S1 product of a tile, window by window (:func:`.pairing.s1_windows`); None when none."""
    day = datetime.fromtimestamp(s2_time_ms / 1000, tz=timezone.utc).date()
    for window, rule in pairing.s1_windows(day):
        listing = client.value(pairing.s1_listing(tile, window, rule), f"tile {tile.dw_id} s1 {window.start}").get("list") or []
        chosen = pairing.pick_s1(listing, rule, tile.epsg)
        if chosen:
            return chosen
    return None


def tile_meta(dataset: str) -> DatasetMeta:
    """The ``dataset.json`` of acquired downstream tiles: ``dw`` (S2, S1, expert DW labels) or ``osm``
    (S2, S1, OSM labels from the WMS, expert DW labels where given)."""
    if dataset == "dw":
        return DW.meta(source="earthengine", layers=["s2", "s1", "dw"],
                       description="DW tiles: S2/S1 through Earth Engine (spec §9 pairing), expert labels")
    return OSM.meta(source="earthengine", layers=["s2", "s1", "osm", "dw"],
                    description="OSM tiles: S2/S1 through Earth Engine (spec §9 pairing), OSM land use through WMS")


def acquire_tile(client: EarthEngineClient, tile: DwTile, cfg: TileSettings, out_dir: str | os.PathLike[str],
                 wms: OsmWms | None = None, meta: DatasetMeta | None = None) -> Acquired:
    """Fetch one tile and write it (``samples/<dw_id>/<layer>.tif``) through :class:`DatasetWriter`;
    layers that could not be had are listed with the reason in ``missing``."""
    meta = meta or tile_meta("osm" if wms is not None else "dw")
    grid = bounds_grid(tile.epsg, tile.bounds, cfg.resolution, tile.height, tile.width)
    where = f"tile {tile.dw_id}"
    layers: dict[str, np.ndarray] = {}
    missing: dict[str, str] = {}
    if wms is not None:  # the cheap request first: a tile without OSM labels is not worth its imagery
        layers["osm"] = with_retries(lambda: wms.labels(grid, f"{where} osm"), client.backoff, f"{where} osm",
                                     client.limiter)
    s2_id, time_ms = pick_s2(client, tile)
    layers["s2"] = client.pixels(pairing.s2_tile_pixels(s2_id), grid, len(S2.bands), S2.dtype, f"{where} s2")
    if not pairing.enough_unique_values(layers["s2"], pairing.S2_MIN_UNIQUE):
        raise LocationFailed(f"{where} s2: {len(np.unique(layers['s2']))} distinct values, fewer than "
                             f"{pairing.S2_MIN_UNIQUE} (blank or saturated, rejected as by the authors)")
    s1_id = pick_s1(client, tile, time_ms)
    if s1_id is None:
        missing["s1"] = f"no Sentinel-1 IW VV/VH image within {pairing.WINDOW_DAYS} days"
    else:
        s1 = client.pixels(pairing.s1_tile_pixels(s1_id), grid, len(S1.bands), S1.dtype, f"{where} s1")
        if pairing.enough_unique_values(s1, pairing.S1_MIN_UNIQUE):
            layers["s1"] = s1
        else:
            missing["s1"] = f"{len(np.unique(s1))} distinct values, fewer than {pairing.S1_MIN_UNIQUE}"
    labels = expert_labels(tile, grid, cfg.label_dir)
    if labels is not None:
        layers["dw"] = labels
    writer = DatasetWriter(out_dir, meta)
    writer.add(tile.dw_id, tile.split, 0, grid, layers)
    return Acquired([], missing, writer.rows)
