"""Reading LSR inputs through the dataset index and writing predictions as a dataset (epitome/data.py)."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
import torch

from eolabels.data.geotiff import read_geotiff
from eolabels.data.index import DatasetIndex
from eolabels.data.synthetic import generate_dataset
from eolabels.data.index import IndexError_
from eolabels.data.kinds import DFC2020, LSR, NOLDO
from eolabels.epitome.data import LayerNames, lsr_layers, read_predictions, read_tiles, write_predictions


@pytest.fixture(scope="module")
def lsr_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("lsr")
    generate_dataset("lsr", root, {"n_tiles": 2, "tile_size": 32, "block": 8, "feature_size": 8.0}, seed=3)
    return root


def test_tiles_match_the_rasters_of_the_index(lsr_root):
    tiles = read_tiles(lsr_root, image_scale=255)
    index = DatasetIndex.open(lsr_root)
    assert [t.name for t in tiles] == list(index.table["id"])
    row = index.table.iloc[1]
    raw = read_geotiff(index.path(row, "image"))[0]
    assert tiles[1].image.dtype == torch.float32 and tiles[1].image.shape == (4, 32, 32)
    assert torch.allclose(tiles[1].image, torch.from_numpy(raw.astype(np.float32) / 255))
    assert torch.equal(tiles[1].coarse, torch.from_numpy(read_geotiff(index.path(row, "nlcd"))[0][0].astype(np.int64)))
    assert tiles[1].grid == index.grid(row)


def test_bands_are_picked_by_name_and_unknown_bands_fail(lsr_root):
    tiles = read_tiles(lsr_root, image_scale=1, bands=["NIR", "R"])
    full = read_tiles(lsr_root, image_scale=1)
    assert torch.equal(tiles[0].image, full[0].image[[3, 0]])
    with pytest.raises(ValueError, match="no bands"):
        read_tiles(lsr_root, image_scale=1, bands=["B4"])
    with pytest.raises(ValueError, match="no samples in split"):
        read_tiles(lsr_root, image_scale=1, split="train")


def test_predictions_round_trip_on_the_input_grid(lsr_root, tmp_path):
    tiles = read_tiles(lsr_root, image_scale=255)
    maps = [torch.full(t.truth.shape, k + 1) for k, t in enumerate(tiles)]
    write_predictions(tmp_path / "pred", tiles, maps, "lsr4", "test predictions", "synthetic")
    assert [torch.equal(a, b) for a, b in zip(read_predictions(tmp_path / "pred", tiles), maps)] == [True, True]
    index = DatasetIndex.open(tmp_path / "pred")
    with rasterio.open(index.path(index.table.iloc[0], "prediction")) as ds:
        assert ds.crs.to_string() == tiles[0].grid.crs
        assert tuple(ds.transform)[:6] == tiles[0].grid.transform
        assert ds.colormap(1)[1][:3] == (0, 128, 0)  # lsr4 forest #008000 from config/tables


def test_missing_prediction_names_the_sample(lsr_root, tmp_path):
    tiles = read_tiles(lsr_root, image_scale=255)
    write_predictions(tmp_path / "one", tiles[:1], [tiles[0].truth], "lsr4", "one tile", "synthetic")
    with pytest.raises(ValueError, match=tiles[1].name):
        read_predictions(tmp_path / "one", tiles)


def test_lsr_reads_the_optical_image_the_coarse_labels_and_the_reference_by_role():
    # truth where the dataset has one, else its high-res labels (DFC2020); never the S1 image
    assert lsr_layers(LSR.meta(source="t", description="")) == LayerNames("image", "nlcd", "truth")
    assert lsr_layers(DFC2020.meta(source="t", description="")) == LayerNames("s2", "modis", "dfc")
    with pytest.raises(IndexError_, match="coarse_label.*found none"):
        lsr_layers(NOLDO.meta(source="t", description="", layers=("s2", "dw")))
