"""Tile grids and request splitting, checked on hand-worked numbers."""

from __future__ import annotations

from pyproj import Transformer

from eolabels.acquisition.grids import row_strips, tile_grid, utm_epsg
from eolabels.data.geotiff import GridSpec


def test_utm_zone_by_hand():
    assert utm_epsg(-75.6, 37.7) == 32618  # (−75.6 + 180) // 6 + 1 = 18, north
    assert utm_epsg(10.0, -30.0) == 32732  # 190 // 6 + 1 = 32 (6°E–12°E), south
    assert utm_epsg(179.9, 1.0) == 32660 and utm_epsg(-180.0, 0.0) == 32601


def test_tile_is_snapped_and_centred():
    x, y = 445003.0, 4170007.0
    lon, lat = Transformer.from_crs("EPSG:32618", "EPSG:4326", always_xy=True).transform(x, y)
    g = tile_grid(lon, lat, 264)
    # half = 1320 m: left = floor((445003 − 1320) / 10) · 10 = 443680, top = floor((4170007 + 1320) / 10) · 10 = 4171320
    assert g.crs == "EPSG:32618" and (g.height, g.width) == (264, 264)
    assert g.transform[0] == 10.0 and g.transform[4] == -10.0
    assert round(g.transform[2], 3) == 443680.0 and round(g.transform[5], 3) == 4171320.0


def test_row_strips_by_hand():
    g = GridSpec("EPSG:32618", (10.0, 0.0, 1000.0, 0.0, -10.0, 5000.0), 10, 4)
    # a row is 4 px × 2 B = 8 B; a limit of 30 B allows floor(29.7) // 8 = 3 rows per strip
    strips = row_strips(g, 2, limit=30)
    assert [(first, s.height) for first, s in strips] == [(0, 3), (3, 3), (6, 3), (9, 1)]
    assert strips[1][1].transform[5] == 5000.0 - 30.0 and strips[3][1].transform[5] == 5000.0 - 90.0
    assert len(row_strips(GridSpec("EPSG:32618", g.transform, 264, 264), 13 * 2)) == 1
