"""The data card reads every raster through the reader's checks: damage fails here, naming the file,
not in a consumer after a training run (truncated tiles, NaN imagery, label ids outside the schema)."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio

from eolabels.data.datacard import write_datacard
from eolabels.data.geotiff import RasterError, read_geotiff, write_geotiff
from eolabels.data.synthetic import generate_dataset


@pytest.fixture()
def dw(tmp_path):
    root = tmp_path / "dw"
    generate_dataset("dw", root, {"n_train": 2, "n_test": 1, "tile_size": 16}, seed=0)
    return root


def _rewrite(path, change):
    data, grid, bands = read_geotiff(path)
    path.unlink()
    write_geotiff(path, change(data), grid, bands)


def test_an_intact_dataset_gets_its_card(dw, tmp_path):
    assert write_datacard(dw, tmp_path / "card.json")["samples"] == 3


def test_a_truncated_tile_outside_the_preview_is_named(dw, tmp_path):
    damaged = dw / "samples" / "dw00002" / "s2.tif"
    damaged.write_bytes(damaged.read_bytes()[:1000])
    with pytest.raises(RasterError, match=f"{damaged}"):
        write_datacard(dw, tmp_path / "card.json")
    assert not (tmp_path / "card.json").exists()


def test_nan_imagery_is_named(dw, tmp_path):
    damaged = dw / "samples" / "dw00001" / "s1.tif"
    with rasterio.open(damaged, "r+") as ds:  # our writer refuses NaN imagery; another tool may not
        ds.write(np.full((ds.count, ds.height, ds.width), np.nan, dtype=np.float32))
    with pytest.raises(RasterError, match=rf"{damaged}.*512 NaN/inf values in imagery"):
        write_datacard(dw, tmp_path / "card.json")


def test_a_label_outside_the_schema_is_named_with_its_schema(dw, tmp_path):
    damaged = dw / "samples" / "dw00000" / "dw.tif"
    _rewrite(damaged, lambda data: np.where(data == data.flat[0], 200, data).astype(data.dtype))
    with pytest.raises(ValueError, match=rf"{damaged}.*label id 200 is not in schema 'dw'"):
        write_datacard(dw, tmp_path / "card.json")
