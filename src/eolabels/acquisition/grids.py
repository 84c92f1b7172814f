"""Tile grids: where the pixels of one location go (local UTM, 10 m), and how a request is split.

Every Earth Engine request names its output grid explicitly (affine transform + CRS code), so the
server resamples onto exactly the tile the dataset index records; nothing is left to the native grid.
"""

from __future__ import annotations

import math

from pyproj import Transformer

from eolabels.data.geotiff import GridSpec

# Earth Engine refuses computePixels responses above 48 MiB (the documented request size limit).
REQUEST_BYTES_LIMIT = 48 * 1024 * 1024


def utm_epsg(lon: float, lat: float) -> int:
    """EPSG code of the WGS 84 / UTM zone holding (lon, lat): 326zz north, 327zz south."""
    zone = min(int((lon + 180) // 6) + 1, 60)
    return (32600 if lat >= 0 else 32700) + zone


def tile_grid(lon: float, lat: float, size: int, resolution: float = 10.0, crs: str | None = None) -> GridSpec:
    """A ``size`` × ``size`` grid of ``resolution`` m centred on (lon, lat) in ``crs`` (default local UTM).

    The upper-left corner is snapped to a multiple of the resolution, so the Sentinel-2 10 m grid
    (whose corners are multiples of 10 m in UTM) and the tile coincide pixel for pixel.
    """
    crs = crs or f"EPSG:{utm_epsg(lon, lat)}"
    x, y = Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform(lon, lat)
    half = size * resolution / 2
    left = math.floor((x - half) / resolution) * resolution
    top = math.floor((y + half) / resolution) * resolution
    return GridSpec(crs=crs, transform=(resolution, 0.0, float(left), 0.0, -resolution, float(top)), height=size, width=size)


def bounds_grid(epsg: int, bounds: tuple[float, float, float, float], resolution: float = 10.0,
                height: int | None = None, width: int | None = None) -> GridSpec:
    """The grid of a DW tile: its bounds in its own CRS, at ``resolution`` unless the sheet gives a shape."""
    left, bottom, right, top = bounds
    width = width or round((right - left) / resolution)
    height = height or round((top - bottom) / resolution)
    return GridSpec(crs=f"EPSG:{epsg}", transform=((right - left) / width, 0.0, left, 0.0, -(top - bottom) / height, top),
                    height=height, width=width)


def row_strips(grid: GridSpec, bytes_per_pixel: int, limit: int = REQUEST_BYTES_LIMIT) -> list[tuple[int, GridSpec]]:
    """Split ``grid`` into horizontal strips whose raw pixels fit under ``limit`` bytes each.

    Returns (first row, strip grid) pairs; one strip when the tile already fits. A GeoTIFF response
    carries a header too, so the limit is applied to the raw pixels with a 1 % margin.
    """
    row_bytes = grid.width * bytes_per_pixel
    rows = max(1, int(limit * 0.99) // row_bytes)
    if rows * row_bytes > limit:
        raise ValueError(f"one row of {grid.width} px × {bytes_per_pixel} B exceeds the {limit} B request limit")
    a = grid.affine
    out = []
    for first in range(0, grid.height, rows):
        h = min(rows, grid.height - first)
        t = (a.a, a.b, a.c + a.b * first, a.d, a.e, a.f + a.e * first)
        out.append((first, GridSpec(crs=grid.crs, transform=t, height=h, width=grid.width)))
    return out
