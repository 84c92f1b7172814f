"""The synthetic world: deterministic, structured like the real problem, and in the common layout."""

import numpy as np
import pytest
from scipy import ndimage
from sklearn.discriminant_analysis import QuadraticDiscriminantAnalysis
from sklearn.linear_model import LogisticRegression

from eolabels.data.datacard import dataset_card
from eolabels.data.index import DatasetIndex
from eolabels.data.layout import BARE, CROPS, GRASS, SHRUB, LayoutParams, generate_layout
from eolabels.data.readers import WindowReader
from eolabels.data.render import render_s1, render_s2
from eolabels.data.synthetic import OsmParams, dataset_params, generate_dataset, incomplete_items
from eolabels.tables import load_many_to_many, load_mapping, load_schema

TINY = {
    "noldo": {"n_locations": 2, "tile_size": 48, "feature_size": 8.0, "incomplete_fraction": 0.0},
    "dw": {"n_train": 1, "n_test": 1, "tile_size": 48},
    "osm": {
        "misregistration_px": 2.0, "misregistration_scale": 12.0,
        "dw_tiles": {"n_train": 1, "n_test": 1, "tile_size": 48},
    },
    "dfc2020": {"n_validation": 2, "n_test": 1, "patch_size": 32, "modis_block": 8},
    "lsr": {"n_tiles": 1, "tile_size": 60, "block": 30, "feature_size": 15.0},
}

TINY_STALE = OsmParams().stale_fraction_max


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("world")
    for name, section in TINY.items():
        generate_dataset(name, root / name, section, seed=5)
    return root


def _arrays(root, layer):
    ix = DatasetIndex.open(root)
    with WindowReader(ix, check_labels=False) as r:
        return [r.read(i, [layer], 0, 0, (int(row.height), int(row.width)))[layer] for i, row in ix.table.iterrows()]


def test_same_seed_same_world_and_samples_independent_of_count(world, tmp_path):
    generate_dataset("noldo", tmp_path / "again", TINY["noldo"], seed=5)
    for layer in ("s2", "s1", "dw", "truth"):
        for a, b in zip(_arrays(world / "noldo", layer), _arrays(tmp_path / "again", layer)):
            np.testing.assert_array_equal(a, b)
    generate_dataset("noldo", tmp_path / "one", {**TINY["noldo"], "n_locations": 1}, seed=5)
    np.testing.assert_array_equal(_arrays(tmp_path / "one", "s2")[0], _arrays(world / "noldo", "s2")[0])
    generate_dataset("noldo", tmp_path / "other", TINY["noldo"], seed=6)
    assert not np.array_equal(_arrays(tmp_path / "other", "truth")[0], _arrays(world / "noldo", "truth")[0])


def test_every_dataset_follows_the_layout_contract(world):
    for name in TINY:
        ix = DatasetIndex.open(world / name)
        card = dataset_card(world / name)
        assert card["synthetic"] and card["samples"] == len(ix)
        for _, row in ix.table.iterrows():
            for layer, spec in ix.meta.layers.items():
                assert (ix.root / row[layer]).is_file()
        for layer, spec in ix.meta.layers.items():
            if spec.schema:  # every label id belongs to its schema (or is the layer's nodata)
                schema = load_schema(spec.schema)
                for a in _arrays(world / name, layer):
                    schema.validate_labels(a, ignore_index=spec.nodata, where=f"{name}/{layer}")


def test_noldo_has_four_seasons_of_s1_s2_and_noisy_labels(world):
    ix = DatasetIndex.open(world / "noldo")
    assert sorted(ix.table["season"].unique()) == [0, 1, 2, 3]
    assert ix.meta.layers["s2"].bands[-2:] == ("B11", "B12") and "B8A" in ix.meta.layers["s2"].bands
    assert ix.meta.layers["s1"].bands == ("VV", "VH")
    s1 = _arrays(world / "noldo", "s1")[0]
    assert -35 < float(np.median(s1)) < 0  # dB
    quality = dataset_card(world / "noldo")["label_quality"][0]
    assert abs(quality["pixel_accuracy"] - 0.70) <= 0.02  # season offsets average to zero
    seasons = quality["pixel_accuracy_by_season"]
    assert seasons["winter"] < seasons["summer"]  # season-dependent noise


def test_dw_labels_leave_unlabelled_areas_and_are_otherwise_clean(world):
    q = dataset_card(world / "dw")["label_quality"][0]
    assert q["pixel_accuracy"] == 1.0 and 0.5 < q["labelled_fraction"] < 0.95


def test_osm_lies_on_the_dw_tiles_misregistered_within_bound(world):
    card = dataset_card(world / "osm")
    assert 0 < card["misregistration"]["max_px"] <= 2.0 + 1e-5
    assert card["label_quality"][0]["pixel_accuracy"] < 1.0
    osm, dw = DatasetIndex.open(world / "osm"), DatasetIndex.open(world / "dw")
    assert osm.table[["id", "split", "season", "crs", "transform"]].equals(dw.table[["id", "split", "season", "crs", "transform"]])


def test_osm_labels_map_onto_the_true_dw_class_except_out_of_date_regions(world, tmp_path):
    osm_to_dw = load_many_to_many("osm_to_dw")
    current = {**TINY["osm"], "stale_fraction_max": 0.0}
    generate_dataset("osm", tmp_path / "current", current, seed=5)
    for stale_max, root in ((0.0, tmp_path / "current"), (TINY_STALE, world / "osm")):
        agree = []
        for osm, dw in zip(_arrays(root, "osm_registered"), _arrays(world / "dw", "truth")):
            agree.append(np.mean([[int(d) in osm_to_dw[int(o)] for o, d in zip(ro, rd)] for ro, rd in zip(osm[0], dw[0])]))
        if stale_max == 0.0:
            assert min(agree) == 1.0  # registered, current OSM classes map onto the true DW class (cromss §9 sets)
        else:
            assert min(agree) < 1.0  # some regions are mapped out of date


def test_noldo_leaves_out_items_of_incomplete_locations_only(tmp_path):
    section = {**TINY["noldo"], "n_locations": 4, "incomplete_fraction": 0.5, "missing_label_share": 1.0}
    params = dataset_params("noldo", section)
    missing = incomplete_items(params, seed=5)
    assert len(missing) == 2 and all(layer == "dw" for items in missing.values() for _, layer in items)
    generate_dataset("noldo", tmp_path / "raw", section, seed=5)
    table = DatasetIndex.open(tmp_path / "raw").table
    for row in table.itertuples():
        location, season = int(row.id[3:]), int(row.season)
        assert (row.dw == "") == ((season, "dw") in missing.get(location, ())) and row.s2 and row.s1
    # the pixels of complete locations do not depend on which others are incomplete
    complete = next(i for i in range(4) if i not in missing)
    np.testing.assert_array_equal(
        _arrays(tmp_path / "raw", "s2")[4 * complete], _arrays(world_free(tmp_path), "s2")[4 * complete]
    )


def world_free(tmp_path):
    """The same four locations with none incomplete."""
    generate_dataset("noldo", tmp_path / "complete", {**TINY["noldo"], "n_locations": 4}, seed=5)
    return tmp_path / "complete"


def test_dfc2020_modis_is_coarse_and_mappable(world):
    igbp_to_dfc = load_mapping("igbp_to_dfc2020")
    for modis in _arrays(world / "dfc2020", "modis"):
        block = modis[0, :8, :8]
        assert (block == block[0, 0]).all()  # constant per MODIS block
        assert set(np.unique(modis)) <= set(igbp_to_dfc)
    ix = DatasetIndex.open(world / "dfc2020")
    assert set(ix.table["split"]) == {"validation", "test"}


def test_lsr_nlcd_blocks_and_naive_baseline(world):
    nlcd = _arrays(world / "lsr", "nlcd")[0][0]
    assert (nlcd[:30, :30] == nlcd[0, 0]).all()
    assert set(np.unique(nlcd)) <= set(dataset_params("lsr").nlcd_classes)
    q = dataset_card(world / "lsr")["label_quality"][0]
    assert 0.3 < q["pixel_accuracy"] < 1.0  # coarse labels are informative but imperfect


@pytest.fixture(scope="module")
def rendered():
    """Summer S2 / S1 of six 96-px tiles with their truth, for separability checks."""
    out = {"s2": [], "s1": [], "truth": []}
    for i in range(6):
        rng = np.random.default_rng(i)
        layout = generate_layout(rng, (96, 96), LayoutParams(feature_size=10))
        out["s2"].append(render_s2(rng, layout, 1, 10).astype(float))
        out["s1"].append(render_s1(rng, layout, 1))
        out["truth"].append(layout.classes)
    return out


def _balanced_accuracy(features, labels, classes):
    clf = LogisticRegression(class_weight="balanced", max_iter=500).fit(features[::2], labels[::2])
    pred, truth = clf.predict(features[1::2]), labels[1::2]
    return np.mean([np.mean(pred[truth == k] == k) for k in classes])


@pytest.mark.parametrize("pair", [(GRASS, CROPS), (SHRUB, BARE)])
def test_colour_alone_cannot_separate_pair_but_texture_can(rendered, pair):
    feats, labels = [], []
    for s2, truth in zip(rendered["s2"], rendered["truth"]):
        ndvi = (s2[7] - s2[3]) / (s2[7] + s2[3])
        high_pass = ndvi - ndimage.uniform_filter(ndvi, 3)
        texture = np.sqrt(ndimage.uniform_filter(high_pass**2, 5))
        interior = ndimage.minimum_filter(truth, 5) == ndimage.maximum_filter(truth, 5)
        keep = interior & np.isin(truth, pair)
        feats.append(np.c_[ndvi[keep], texture[keep]])
        labels.append(truth[keep])
    x, y = np.concatenate(feats), np.concatenate(labels)
    colour = _balanced_accuracy(x[:, :1], y, pair)
    both = _balanced_accuracy(x, y, pair)
    assert colour < 0.70, colour
    assert both > 0.85, both


@pytest.mark.parametrize("season", [0, 2, 3])
def test_outside_summer_crops_show_their_phenology_in_colour(season):
    """Tilled soil or young crops off-season: colour alone separates crops from grass then."""
    feats, labels = [], []
    for i in range(3):
        rng = np.random.default_rng(i)
        layout = generate_layout(rng, (96, 96), LayoutParams(feature_size=10))
        s2 = render_s2(rng, layout, season, 10).astype(float)
        keep = np.isin(layout.classes, (GRASS, CROPS))
        feats.append(s2[:, keep].T)
        labels.append(layout.classes[keep])
    x, y = np.concatenate(feats), np.concatenate(labels)
    assert _balanced_accuracy(x, y, (GRASS, CROPS)) > 0.9


def test_s1_is_a_weaker_modality_than_s2(rendered):
    y = np.concatenate([t.ravel() for t in rendered["truth"]])
    x2 = np.concatenate([a.reshape(13, -1).T for a in rendered["s2"]])
    x1 = np.concatenate([a.reshape(2, -1).T for a in rendered["s1"]])

    def per_pixel(x):
        clf = QuadraticDiscriminantAnalysis(reg_param=1e-3).fit(x[::2], y[::2])
        p, t = clf.predict(x[1::2]), y[1::2]
        return np.mean([np.mean(p[t == k] == k) for k in np.unique(t)])

    s2, s1 = per_pixel(x2), per_pixel(x1)
    assert s2 > s1 + 0.2 and s1 > 1 / 9 + 0.1, (s2, s1)  # weaker, but informative


def test_unknown_dataset_and_bad_settings_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="unknown synthetic dataset"):
        generate_dataset("sentinel3", tmp_path, {})
    with pytest.raises(ValueError, match="synthetic.noldo"):
        dataset_params("noldo", {"n_location": 3})
    with pytest.raises(ValueError, match="nlcd_classes"):
        generate_dataset("lsr", tmp_path / "l", {**TINY["lsr"], "nlcd_classes": [11, 99]})


def test_coarse_classes_without_a_reference_class_are_left_out_of_the_card(world, tmp_path):
    # IGBP 9 (savanna) maps to DFC2020 original 3 -> DW-like id 8, outside the 8-class reference
    import shutil

    import rasterio

    shutil.copytree(world / "dfc2020", tmp_path / "dfc2020")
    ix = DatasetIndex.open(tmp_path / "dfc2020")
    with rasterio.open(ix.path(ix.table.iloc[0], "modis"), "r+") as ds:
        modis = ds.read(1)
        modis[:8, :8] = 9
        ds.write(modis, 1)
    quality = dataset_card(tmp_path / "dfc2020")["label_quality"][0]
    assert quality["labelled_fraction"] == pytest.approx(1 - 64 / (3 * 32 * 32), abs=1e-4)  # card rounds to 4 d.p.
