"""OSM land use through a real WMS on 127.0.0.1, hit by the real OWSLib code path (spec §9 steps 1-6)."""

from __future__ import annotations

import numpy as np
import pytest
from wms_server import WmsServer, legend_palette

from eolabels.acquisition.grids import tile_grid
from eolabels.acquisition.pool import LocationFailed
from eolabels.acquisition.wms import (
    OsmWms, WmsSettings, legend_colours, nearest_legend_index, open_classes, request_box, request_size, resolve_claims,
)
from eolabels.data.geotiff import GridSpec

# a 64 × 64, 10 m tile in EPSG:3857: forests (legend 3) left of x = 1000320 (column 32), water bodies
# (legend 9) right of it, and a 4 m speck of urban fabric (legend 1) that the opening must remove
TILE = GridSpec("EPSG:3857", (10.0, 0.0, 1_000_000.0, 0.0, -10.0, 5_000_000.0), 64, 64)


def field(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    index = np.where(x < 1_000_320, 3, 9).astype(np.uint8)
    speck = (abs(x - 1_000_100) < 2) & (abs(y - 4_999_700) < 2)
    index[speck] = 1
    return index


def settings(url: str, **kw) -> WmsSettings:
    return WmsSettings(url=url, **kw)


def test_request_box_and_size_by_hand():
    # 640 m square: pad 64 m (10 % of the height) left/bottom, 64 m (10 % of the width) right/top
    assert request_box(TILE, 0.10) == pytest.approx((999_936, 4_999_296, 1_000_704, 5_000_064))
    assert request_size(TILE, 2.4) == (154, 154)  # round(64 × 2.4) = 153.6 → 154


def test_legend_colours_in_order_of_first_appearance():
    img = np.array([[[9, 9, 9], [1, 1, 1], [9, 9, 9]], [[2, 2, 2], [1, 1, 1], [3, 3, 3]]], np.uint8)
    assert legend_colours(img, 2).tolist() == [[9, 9, 9], [1, 1, 1], [2, 2, 2]]
    with pytest.raises(ValueError, match="has 4 colours, need 5"):
        legend_colours(img, 4)


def test_nearest_colour_and_claims_by_hand():
    colours = np.array([[255, 255, 255], [230, 0, 77], [0, 204, 242]])
    rgb = np.array([[[250, 250, 250], [200, 10, 80], [10, 190, 230]]], np.uint8)
    assert nearest_legend_index(rgb, colours).tolist() == [[0, 1, 2]]
    masks = np.array([[[1, 1, 0]], [[0, 1, 0]]], bool)  # pixel 1 claimed by both classes
    assert resolve_claims(masks).tolist() == [[1, 0, 0]]


def test_opening_removes_specks_keeps_blocks():
    index = np.zeros((7, 7), np.uint8)
    index[0:4, 0:4] = 2  # a block in the corner survives (the border counts as set) ...
    index[5, 5] = 1  # ... an isolated pixel goes
    out = open_classes(index, 2)
    # erosion by the cross keeps rows/cols 0-2 of the block; dilation by the cross then restores row 3
    # and column 3 except the corner (3, 3), whose cross-neighbours (2, 3), (3, 2) were both eroded
    want = np.zeros((7, 7), np.uint8)
    want[0:4, 0:4] = 2
    want[3, 3] = 0
    np.testing.assert_array_equal(out, want)


def test_labels_through_owslib_match_the_rendered_field():
    with WmsServer(field) as url:
        wms = OsmWms(settings(url))
        labels = wms.labels(TILE, "tile t")
    np.testing.assert_array_equal(wms.colours, legend_palette().astype(np.int64))
    expected = np.where(np.arange(64) < 32, 2, 8)  # legend 3 → forests (2), legend 9 → water bodies (8)
    np.testing.assert_array_equal(labels, np.broadcast_to(expected, (64, 64)))


@pytest.mark.parametrize("image_format", ["image/png", "image/geotiff"])
def test_utm_tile_and_formats(image_format):
    lon, lat = 8.98, 40.82  # inside the field's extent (x ≈ 999,600 … 1,000,300 m in EPSG:3857)
    grid = tile_grid(lon, lat, 32)
    with WmsServer(field) as url:
        labels = OsmWms(settings(url, image_format=image_format)).labels(grid, "tile u")
    assert set(np.unique(labels)) <= {2, 8, 255} and (labels == 2).mean() > 0.3


def test_bilinear_option_runs_and_keeps_valid_ids():
    with WmsServer(field) as url:
        labels = OsmWms(settings(url, resampling="bilinear")).labels(TILE, "tile b")
    assert set(np.unique(labels)) <= set(range(13)) | {255} and (labels[:, :30] == 2).all()


@pytest.mark.parametrize("mode, words", [
    ("se_xml", ["tile x", "ServiceException", "no data for this SRS"]),
    ("xml_200", ["tile x", "ServiceException", "no data for this SRS"]),
    ("html", ["tile x", "text/html", "502 Bad Gateway"]),
    ("empty", ["tile x", "empty WMS image"]),
])
def test_bad_wms_responses_fail_the_tile(mode, words):
    with WmsServer(field, mode=mode) as url:
        wms = OsmWms(settings(url))
        with pytest.raises(LocationFailed) as err:
            wms.labels(TILE, "tile x")
    for word in words:
        assert word in str(err.value)


@pytest.mark.parametrize("code, retried", [(500, True), (503, True), (404, False)])
def test_http_errors_retry_only_when_transient(code, retried):
    from eolabels.acquisition.pool import Backoff, with_retries

    server = WmsServer(field, mode=f"http{code}")
    with server as url:
        wms = OsmWms(settings(url))
        with pytest.raises(LocationFailed, match=f"tile x.*{code}"):
            with_retries(lambda: wms.labels(TILE, "tile x"), Backoff(base=0.001, attempts=3), "tile x")
    assert server.requests.count("GetMap") == (3 if retried else 1)


def test_missing_layer_is_named():
    with WmsServer(field) as url, pytest.raises(LocationFailed, match="no layer 'osm:other'"):
        OsmWms(settings(url, layer="osm:other"))
