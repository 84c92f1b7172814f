"""The authors' DW-tile pairing rules (spec §9), each on a hand-made case, and one tile end to end."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest
from replay_world import SCENE_PRODUCT, S1_PRODUCT, constructed_s1, geotiff_bytes, put_pixels, put_value, real_dw, real_s2
from wms_server import WmsServer

from eolabels.acquisition import pairing
from eolabels.acquisition.client import EarthEngineClient
from eolabels.acquisition.dwtiles import TileSettings, acquire_tile
from eolabels.acquisition.earthengine import Window
from eolabels.acquisition.grids import bounds_grid
from eolabels.acquisition.pool import Backoff, LocationFailed, RateLimiter
from eolabels.acquisition.sheets import DwTile
from eolabels.acquisition.wms import OsmWms, WmsSettings
from eolabels.data.geotiff import write_geotiff


def test_dates_of_expert_and_consensus_tiles():
    assert pairing.expert_tile_date("dw_-75.6_37.6-20190612") == date(2019, 6, 12)
    assert pairing.consensus_tile_date("20180421T160519_20180421T160515_T18SVG") == date(2018, 4, 21)
    with pytest.raises(ValueError, match="no YYYYMMDD suffix"):
        pairing.expert_tile_date("dw_tile")
    test_tile = DwTile("t", 32618, (0, 0, 1, 1), "test", s2_system_index="20180421T160519_x")
    assert pairing.tile_date(test_tile) == date(2018, 4, 21)
    assert pairing.tile_date(DwTile("x-20200101", 32618, (0, 0, 1, 1), "train", date="2020-02-02")) == date(2020, 2, 2)


def test_windows_by_hand():
    assert pairing.s2_windows(date(2019, 6, 12)) == [Window("2019-06-12", "2019-06-27"), Window("2019-05-28", "2019-06-12")]
    assert pairing.s1_windows(date(2019, 6, 12)) == [(Window("2019-06-12", "2019-06-28"), "most_recent"),
                                                     (Window("2019-05-28", "2019-06-13"), "first_in_crs")]


def test_crs_and_s1_rules():
    listing = [["a", "EPSG:32617", 1], ["b", "EPSG:32618", 2], ["c", "EPSG:32618", 3]]
    assert pairing.first_with_crs(listing, 32618) == "b" and pairing.first_with_crs(listing, 32633) is None
    assert pairing.pick_s1(listing, "most_recent", 32633) == "a"
    assert pairing.pick_s1(listing, "first_in_crs", 32618) == "b"
    assert pairing.pick_s1(listing, "first_in_crs", 32633) == "a"  # no CRS match: the first image
    assert pairing.pick_s1([], "most_recent", 32618) is None


def test_unique_value_rejection_thresholds():
    assert pairing.S2_MIN_UNIQUE == 117 and pairing.S1_MIN_UNIQUE == 18
    assert pairing.enough_unique_values(np.arange(117), 117) and not pairing.enough_unique_values(np.arange(116), 117)



def test_one_tile_end_to_end(replay, scene, tmp_path):
    """A 32 × 32 tile of the real scene: S2 real, expert labels = the real DW labels as expert ids
    (+1), OSM from the local WMS; written as the OSM layout's layers."""
    store, http, seen = replay
    tile = DwTile("dw_-75.62_37.67-20160112", 32618, (445000.0, 4169680.0, 445320.0, 4170000.0), "train")
    grid = bounds_grid(tile.epsg, tile.bounds)
    first, second = pairing.s2_windows(pairing.tile_date(tile))
    put_value(store, pairing.s2_listing(tile, first), {"list": []})  # nothing in the later half
    put_value(store, pairing.s2_listing(tile, second),
              {"list": [["other", "EPSG:32617", 1452000000000], [SCENE_PRODUCT, "EPSG:32618", 1452614802000]]})
    (w1, r1), (w2, r2) = pairing.s1_windows(date(2016, 1, 12))
    put_value(store, pairing.s1_listing(tile, w1, r1), {"list": [[S1_PRODUCT, "EPSG:32618"]]})
    put_pixels(store, pairing.s2_tile_pixels(SCENE_PRODUCT), grid, geotiff_bytes(real_s2(grid), grid))
    put_pixels(store, pairing.s1_tile_pixels(S1_PRODUCT), grid, geotiff_bytes(constructed_s1(grid), grid))
    labels = tmp_path / "experts"
    write_geotiff(labels / f"{tile.dw_id}.tif", real_dw(scene, grid) + 1, grid, ["label"])
    client = EarthEngineClient(RateLimiter(60_000), Backoff(base=0.001, attempts=2))
    with WmsServer(lambda x, y: np.where(x < -8_418_188, 3, 9).astype(np.uint8)) as url:
        done = acquire_tile(client, tile, TileSettings(label_dir=str(labels)), tmp_path / "shard",
                            wms=OsmWms(WmsSettings(url=url)))
    assert (done.seasons, done.missing) == ([], {}) and done.rows[0]["osm"] == f"samples/{tile.dw_id}/osm.tif"
    from eolabels.data.geotiff import read_geotiff
    dw, got, _ = read_geotiff(tmp_path / "shard" / "samples" / tile.dw_id / "dw.tif", expect=grid)
    np.testing.assert_array_equal(dw[0], real_dw(scene, grid))  # expert k → DW k − 1
    osm, _, _ = read_geotiff(tmp_path / "shard" / "samples" / tile.dw_id / "osm.tif", expect=grid)
    assert set(np.unique(osm)) <= {2, 8} and len(np.unique(osm)) == 2
    s2, _, _ = read_geotiff(tmp_path / "shard" / "samples" / tile.dw_id / "s2.tif", expect=grid)
    np.testing.assert_array_equal(s2, real_s2(grid))


def test_tile_without_s2_in_its_crs_fails_naming_it(replay, tmp_path):
    store, http, seen = replay
    tile = DwTile("dw_x-20160112", 32618, (445000.0, 4169680.0, 445320.0, 4170000.0), "train")
    first, second = pairing.s2_windows(pairing.tile_date(tile))
    put_value(store, pairing.s2_listing(tile, first), {"list": [["other", "EPSG:32617", 1]]})
    client = EarthEngineClient(RateLimiter(60_000), Backoff(base=0.001, attempts=2))
    with pytest.raises(LocationFailed, match="tile dw_x-20160112: none of 1 Sentinel-2 images is in the tile's CRS EPSG:32618"):
        acquire_tile(client, tile, TileSettings(), tmp_path)
    assert not (tmp_path / "samples").exists()
