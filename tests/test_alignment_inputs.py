"""Bad input of the alignment stage fails with a clear error naming the tile or file (issue 13)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from eolabels.alignment.fields import FieldRequestError
from eolabels.alignment.channels import MapEncoder
from eolabels.alignment.pairs import PairSampler, ScaleTile
from eolabels.alignment.tiles import AlignmentInputError, load_align_dataset, read_maps
from eolabels.alignment.world import synthetic_osm_world
from eolabels.data.geotiff import GridSpec, RasterError, read_geotiff, write_geotiff
from eolabels.data.index import DatasetIndex


@pytest.fixture(scope="module")
def osm_root(tmp_path_factory):
    """The osm dataset as the workflow makes it: OSM labels generated on the dw tiles, every tile kept by
    the OSM↔DW filter (θ = 0), so images, maps and true fields share one dataset."""
    tiles = {"n_train": 2, "n_test": 1, "tile_size": 40}
    return synthetic_osm_world(tmp_path_factory.mktemp("osm"), tiles, {"misregistration_px": 2.0}, seed=3)


@pytest.fixture
def osm_copy(osm_root, tmp_path):
    root = tmp_path / "osm"
    shutil.copytree(osm_root, root)
    return root


def test_tiles_are_read_by_role(osm_root):
    data = load_align_dataset(osm_root, "osm")
    assert data.layers == {"image": "s2", "label": "osm", "truth": "osm_registered", "displacement": "displacement"}
    assert len(data.tiles) == 3 and data.tiles[0].field.shape == (2, 40, 40) and data.nodata == 255
    assert [t.split for t in data.tiles] == ["train", "train", "test"]


def test_map_on_another_grid_than_the_image_fails_naming_the_file(osm_copy):
    index = DatasetIndex.open(osm_copy)
    path = index.path(index.table.iloc[1], "osm")
    labels, grid, bands = read_geotiff(path)
    shifted = GridSpec(grid.crs, (grid.transform[0], 0.0, grid.transform[2] + 30.0, 0.0, grid.transform[4],
                                  grid.transform[5]), grid.height, grid.width)
    write_geotiff(path, labels, shifted, bands, nodata=255)
    with pytest.raises(RasterError, match=str(path)):
        load_align_dataset(osm_copy, "osm")


def test_all_nodata_map_fails_naming_the_tile(osm_copy):
    index = DatasetIndex.open(osm_copy)
    row = index.table.iloc[2]
    path = index.path(row, "osm")
    labels, grid, bands = read_geotiff(path)
    write_geotiff(path, np.full_like(labels, 255), grid, bands, nodata=255)
    with pytest.raises(AlignmentInputError, match=f"tile {row['id']}: map layer 'osm' is all nodata"):
        load_align_dataset(osm_copy, "osm")


def test_maps_of_a_round_must_cover_every_tile(osm_root, osm_copy):
    data = load_align_dataset(osm_root, "osm")
    index = DatasetIndex.open(osm_copy)
    index.table.iloc[:2].to_csv(osm_copy / "index.csv", index=False)
    with pytest.raises(AlignmentInputError, match=f"no tile {data.tiles[2].name}"):
        read_maps(osm_copy, data.tiles, "osm")


def test_a_label_schema_the_dataset_lacks_is_named(osm_root):
    with pytest.raises(ValueError, match="want one layer \\(label, schema dfc2020\\), found none"):
        load_align_dataset(osm_root, "dfc2020")


def test_tile_smaller_than_the_network_input_fails_naming_it():
    tile = ScaleTile("osm00002", np.zeros((2, 30, 30), np.float32), np.zeros((30, 30), np.uint8))
    with pytest.raises(FieldRequestError, match="tile osm00002: 30x30 px .* smaller than the network's 76-px input"):
        PairSampler([tile], MapEncoder("osm", 255), 76, 20, 2.0, 16.0)
