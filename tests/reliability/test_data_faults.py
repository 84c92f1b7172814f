"""Damaged or inconsistent dataset files: the data card (which reads every raster through the
consumers' reader) fails naming the file, and writes no card."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
from reliability_helpers import leftovers
from rasterio.crs import CRS

from eolabels.data.datacard import write_datacard
from eolabels.data.geotiff import RasterError
from eolabels.data.index import IndexError_

REGENERATE = "regenerate the dataset with `snakemake --forcerun"


def _card_fails(dw, tmp_path, error, pattern):
    out = tmp_path / "card"
    with pytest.raises(error, match=pattern) as info:
        write_datacard(dw, out / "datacard.json")
    assert leftovers(out) == []
    return str(info.value)


def _rewrite(path, data=None, **profile):
    """Rewrite a GeoTIFF with rasterio (bypassing the project's writer, which refuses such files)."""
    with rasterio.open(path) as ds:
        meta, old = ds.profile, ds.read()
    meta.update(profile)
    data = old if data is None else data
    meta.update(count=data.shape[0], height=data.shape[1], width=data.shape[2], dtype=data.dtype)
    path.unlink()
    with rasterio.open(path, "w", **meta) as ds:
        ds.write(data)


def test_truncated_geotiff(dw, tmp_path):
    tile = dw / "samples" / "dw00002" / "s2.tif"
    tile.write_bytes(tile.read_bytes()[:1000])
    message = _card_fails(dw, tmp_path, RasterError, str(tile))
    assert REGENERATE in message and str(dw / "index.csv") in message


def test_deleted_tile_says_how_to_regenerate(dw, tmp_path):
    tile = dw / "samples" / "dw00001" / "s1.tif"
    tile.unlink()
    message = _card_fails(dw, tmp_path, RasterError, rf"{tile}: file does not exist")
    assert f"snakemake --forcerun {dw / 'index.csv'}" in message


def test_wrong_crs(dw, tmp_path):
    tile = dw / "samples" / "dw00000" / "s2.tif"
    _rewrite(tile, crs=CRS.from_epsg(3857))
    _card_fails(dw, tmp_path, RasterError, rf"{tile}: CRS EPSG:3857 disagrees with index")


def test_wrong_shape(dw, tmp_path):
    tile = dw / "samples" / "dw00000" / "dw.tif"
    with rasterio.open(tile) as ds:
        data = ds.read()
    _rewrite(tile, np.concatenate([data, data], axis=1))
    _card_fails(dw, tmp_path, RasterError, rf"{tile}: shape 32x16 disagrees with index 16x16")


def test_wrong_band_count(dw, tmp_path):
    tile = dw / "samples" / "dw00001" / "s2.tif"
    with rasterio.open(tile) as ds:
        data = ds.read()
    _rewrite(tile, data[:4])
    _card_fails(dw, tmp_path, RasterError, rf"{tile}: has 4 bands, dataset.json says 13")


def test_wrong_dtype(dw, tmp_path):
    tile = dw / "samples" / "dw00001" / "s2.tif"  # uint16 digital numbers, here as float reflectances
    with rasterio.open(tile) as ds:
        data = ds.read().astype(np.float32) / 10000
    _rewrite(tile, data)
    _card_fails(dw, tmp_path, RasterError, rf"{tile}: holds float32 values, dataset.json says uint16")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf], ids=["nan", "+inf", "-inf"])
def test_non_finite_imagery(dw, tmp_path, bad):
    tile = dw / "samples" / "dw00002" / "s1.tif"
    with rasterio.open(tile) as ds:
        data = ds.read()
    data[1, 3, 4] = bad
    _rewrite(tile, data)
    _card_fails(dw, tmp_path, RasterError, rf"{tile}( window \(0,0\))?: 1 NaN/inf values in imagery")


def test_labels_outside_the_schema(dw, tmp_path):
    tile = dw / "samples" / "dw00000" / "dw.tif"
    with rasterio.open(tile) as ds:
        data = ds.read()
    data[0, 0, 0] = 200
    _rewrite(tile, data)
    _card_fails(dw, tmp_path, ValueError, rf"{tile}.*label id 200 is not in schema 'dw'")


def test_empty_index(dw, tmp_path):
    index = dw / "index.csv"
    index.write_text(index.read_text().splitlines()[0] + "\n")
    _card_fails(dw, tmp_path, IndexError_, rf"{index}: index has no samples")


def test_malformed_dataset_description(dw, tmp_path):
    meta = dw / "dataset.json"
    meta.write_text(meta.read_text()[:40])
    _card_fails(dw, tmp_path, IndexError_, rf"{meta}: malformed dataset description")


def test_dataset_description_with_an_unknown_layer_role(dw, tmp_path):
    meta = dw / "dataset.json"
    description = json.loads(meta.read_text())
    next(iter(description["layers"].values()))["role"] = "imagery"
    meta.write_text(json.dumps(description))
    _card_fails(dw, tmp_path, IndexError_, rf"{meta}: malformed dataset description \(layer role must be one of")
