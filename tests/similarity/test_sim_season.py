"""A2's withheld season (spec §5.a): the season split of the tiles, the one-sided Mann–Whitney test
worked out by hand, training and the audit without the withheld season's tiles, and the data source
(dataset meta) named in the similarity tables and figures."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict

import numpy as np
import pandas as pd
import pytest

from eolabels.data.synthetic import generate_dataset
from eolabels.similarity.audit import (
    AuditSettings,
    run_density_audit,
    season_mask,
    split_by_season,
    tile_seasons,
    withheld_season_test,
)
from eolabels.report.tables import data_banner, source_tag
from eolabels.similarity.report import tile_sets_source
from eolabels.similarity.tiles import load_tiles


@pytest.fixture(scope="module")
def worlds(tmp_path_factory):
    """Tiny noldo (2 locations x 4 seasons) and dw (4 tiles, seasons set to winter, spring, winter,
    summer so both A2 groups exist) datasets, once as synthetic and once relabelled as local data."""
    root = tmp_path_factory.mktemp("worlds")
    generate_dataset("noldo", root / "synthetic" / "noldo", {"incomplete_fraction": 0.0, "n_locations": 2, "tile_size": 16}, seed=0)
    generate_dataset("dw", root / "synthetic" / "dw", {"n_train": 2, "n_test": 2, "tile_size": 16}, seed=0)
    index = root / "synthetic" / "dw" / "index.csv"
    table = pd.read_csv(index, dtype=str, keep_default_na=False)
    table["season"] = ["3", "0", "3", "1"]
    table.to_csv(index, index=False)
    shutil.copytree(root / "synthetic", root / "local")
    for name in ("noldo", "dw"):
        meta_path = root / "local" / name / "dataset.json"
        meta = json.loads(meta_path.read_text())
        meta["source"] = "local"
        meta_path.write_text(json.dumps(meta))
    return root


def test_season_split_of_the_tiles(worlds):
    tiles = load_tiles(worlds / "synthetic" / "noldo", ["image", "label"])
    assert tile_seasons(tiles) == ["spring", "summer", "autumn", "winter"] * 2
    kept, withheld = split_by_season(tiles, "winter")
    assert tile_seasons(kept) == ["spring", "summer", "autumn"] * 2 and tile_seasons(withheld) == ["winter"] * 2
    assert np.array_equal(kept.layers["image"], tiles.layers["image"][[0, 1, 2, 4, 5, 6]])
    assert np.array_equal(withheld.layers["label"], tiles.layers["label"][[3, 7]])
    assert kept.table["id"].tolist() == ["loc00000"] * 3 + ["loc00001"] * 3
    same, none = split_by_season(tiles, None)
    assert same is tiles and none is None
    with pytest.raises(ValueError, match="season 'monsoon' is not one of its seasons"):
        split_by_season(tiles, "monsoon")
    with pytest.raises(ValueError, match="every tile is of season 'winter'; none is left to train on"):
        split_by_season(withheld, "winter")
    # dw lists no season names (single-date tiles): read with the training set's, as the audit does
    heldout = load_tiles(worlds / "synthetic" / "dw", ["image"])
    assert heldout.index.meta.seasons == ()
    assert tile_seasons(heldout, tiles.index.meta.seasons) == ["winter", "spring", "winter", "summer"]
    assert season_mask(heldout, "winter", tiles.index.meta.seasons).tolist() == [True, False, True, False]
    assert season_mask(heldout, "autumn", tiles.index.meta.seasons).tolist() == [False] * 4
    with pytest.raises(ValueError, match="season 'winter' is not one of its seasons"):
        season_mask(heldout, "winter")  # no names at all: positions only


def test_mann_whitney_by_hand():
    # per-tile medians: withheld (2, 2.2) all below trained (6, 5.25, 8): U = 0; the exact null
    # distribution of U for 2 vs 3 tiles has C(5, 2) = 10 equally likely arrangements, P(U <= 0) = 0.1
    withheld = [np.array([1.0, 2.0, 3.0]), np.array([1.5, 2.2, 2.5])]
    trained = [np.array([5.0, 6.0, 7.0]), np.array([4.0, 6.5]), np.array([8.0])]
    test = withheld_season_test(withheld, trained)
    assert (test["tiles_withheld"], test["tiles_trained"]) == (2, 3)
    assert (test["tile_median_withheld"], test["tile_median_trained"]) == (2.1, 6.0)
    assert test["tile_U"] == 0 and test["tile_p"] == pytest.approx(0.1) and test["tile_min_p"] == pytest.approx(0.1)
    # pooled samples: 6 vs 6, all below: U = 0, p = 1 / C(12, 6) = 1/924
    assert (test["sample_median_withheld"], test["sample_median_trained"]) == (2.1, 6.25)
    assert test["sample_U"] == 0 and test["sample_p"] == pytest.approx(1 / 924)
    # medians (3, 7) vs (1, 5, 9): U = #(w > t) = 1 + 2 = 3; the U distribution for 2 vs 3 has counts
    # 1, 1, 2, 2, 2, 1, 1 over U = 0..6, so P(U <= 3) = 6/10
    mixed = withheld_season_test([np.array([3.0]), np.array([7.0])], [np.array([1.0]), np.array([5.0]), np.array([9.0])])
    assert mixed["tile_U"] == 3 and mixed["tile_p"] == pytest.approx(0.6)
    empty = withheld_season_test([], trained)
    assert empty["tiles_withheld"] == 0 and np.isnan(empty["tile_p"]) and np.isnan(empty["sample_U"])


def test_train_stage_leaves_the_withheld_season_out(worlds, tmp_path):
    from eolabels.similarity.segmentation import TrainSettings
    from eolabels.similarity.stages import TrainOutputs, train_stage

    recipe = asdict(TrainSettings(width=4, depth=2, steps=2, batch_size=2, crop_size=16))
    data = {"dataset_root": worlds / "synthetic" / "noldo", "heldout_root": worlds / "synthetic" / "dw"}
    metrics = train_stage(
        **data, outputs=TrainOutputs(tmp_path / "m.pt", tmp_path / "m.json"), train=recipe, seed=0,
        heldout_split=None, withheld_season="winter",
    )
    assert (metrics["training_tiles"], metrics["withheld_tiles"]) == (6, 2)
    assert metrics["withheld_season"] == "winter" and metrics["data"] == "synthetic"
    # the held-out OA over all tiles is a pixel-weighted mean of the two season groups' OAs
    groups = [metrics[f"heldout_OA_{g}"] for g in ("trained_seasons", "withheld_season") if f"heldout_OA_{g}" in metrics]
    assert groups and min(groups) - 1e-12 <= metrics["heldout_OA"] <= max(groups) + 1e-12
    everything = train_stage(
        **data, outputs=TrainOutputs(tmp_path / "n.pt", tmp_path / "n.json"), train=recipe, seed=0,
        heldout_split=None, withheld_season=None,
    )
    assert (everything["training_tiles"], everything["withheld_tiles"]) == (8, 0)


def _audit(worlds, source: str, tmp_path, settings: AuditSettings, monkeypatch):
    """Run the audit of a fresh PlainUNet; returns the summary, the tile table, the markdown and the
    figure titles (captured instead of saving the figures)."""
    from similarity_nets import untrained_audit_setup

    from eolabels.similarity import audit_figures

    titles = []

    def capture(fig, path, dpi=110):
        import matplotlib.pyplot as plt

        titles.extend([fig.get_suptitle(), *(ax.get_title() for ax in fig.axes)])
        plt.close(fig)

    monkeypatch.setattr(audit_figures, "save_figure", capture)
    segmenter, tables, figures = untrained_audit_setup(worlds / source / "noldo", tmp_path)
    summary = run_density_audit(
        segmenter, worlds / source / "noldo", worlds / source / "dw", tmp_path / "density", tables, figures,
        settings,
    )
    return summary, pd.read_csv(tables["tiles"]), tables["summary_md"].read_text(), titles


def test_audit_withholds_the_season_from_pass_1(worlds, tmp_path, monkeypatch):
    settings = AuditSettings(stride=8, context=8, figure_tiles=1, withheld_season="winter")
    summary, tiles, markdown, titles = _audit(worlds, "synthetic", tmp_path, settings, monkeypatch)
    values = summary.set_index("measure")["value"]
    assert values["training samples"] == 6 * 4  # 3 seasons x 2 locations, 2 x 2 centres per tile
    assert values["A2 held-out tiles of the withheld season (winter)"] == 2
    assert values["A2 held-out tiles of the trained seasons"] == 2
    assert values["A2 smallest p the exact per-tile test can reach with these tile counts"] == pytest.approx(1 / 6)
    p_row = summary.set_index("measure").loc["A2 one-sided Mann-Whitney p (per-tile median N_S, withheld < trained)"]
    assert p_row["target"] == "< 0.01" and p_row["meets_target"] == (p_row["value"] < 0.01)
    # the test is on the held-out tiles' own N_S, as written in the per-tile table
    held = tiles[tiles["dataset"] == "dw"]
    assert held["withheld_season"].tolist() == [True, False, True, False]
    noldo = tiles[tiles["dataset"] == "noldo"]
    assert len(noldo) == 8 and noldo["withheld_season"].sum() == 2  # every tile has a density map
    assert noldo[noldo["withheld_season"]]["label_error_rate"].isna().all()
    assert len(list((tmp_path / "density" / "noldo").glob("*.tif"))) == 8
    samples = pd.read_csv(tmp_path / "samples.csv")
    assert "3" not in set(samples["season"].astype(str))  # no winter sample among the training samples
    assert "Held-out tiles by season" in titles
    assert markdown.count(data_banner("synthetic")) == 1


def test_audit_without_withheld_season_has_no_season_rows(worlds, tmp_path, monkeypatch):
    settings = AuditSettings(stride=8, context=8, figure_tiles=1)
    summary, tiles, _, titles = _audit(worlds, "synthetic", tmp_path, settings, monkeypatch)
    assert not summary["measure"].str.contains("withheld").any()
    assert summary.set_index("measure")["value"]["training samples"] == 8 * 4
    assert not tiles["withheld_season"].any()
    assert not any("by season" in t for t in titles)


# --- data source named from the dataset meta -----------------------------------------------


def test_data_of_tile_sets_comes_from_their_meta(worlds):
    synthetic = [load_tiles(worlds / "synthetic" / n, ["label"]) for n in ("noldo", "dw")]
    local = [load_tiles(worlds / "local" / n, ["label"]) for n in ("noldo", "dw")]
    assert tile_sets_source(*synthetic) == "synthetic"
    assert tile_sets_source(*local) == "local"
    assert tile_sets_source(synthetic[0], local[1]) == "noldo=synthetic; dw=local"


@pytest.mark.parametrize("source", ["synthetic", "local"])
def test_audit_outputs_name_the_data_source(worlds, tmp_path, monkeypatch, source):
    settings = AuditSettings(stride=8, context=8, figure_tiles=1, withheld_season="winter")
    summary, _, markdown, titles = _audit(worlds, source, tmp_path, settings, monkeypatch)
    assert summary.columns[0] == "data" and set(summary["data"]) == {source}
    assert set(pd.read_csv(tmp_path / "summary_csv.csv")["data"]) == {source}
    assert markdown.startswith(f"# Density audit (network input similarity, spec §5.a) — {source_tag(source)}")
    assert data_banner(source) in markdown
    assert ("SYNTHETIC" in markdown or "Synthetic" in markdown) == (source == "synthetic")
    assert f"Density audit, training tiles — {source_tag(source)}" in titles
    assert f"Density audit A2 — {source_tag(source)}" in titles
    if source == "local":
        assert not any("synthetic" in t.lower() for t in titles)


@pytest.mark.parametrize("source", ["synthetic", "local"])
def test_self_denoising_outputs_name_the_data_source(worlds, tmp_path, monkeypatch, source):
    from eolabels.similarity import selfdenoise_figures
    from eolabels.similarity.segmentation import TrainSettings
    from eolabels.similarity.selfdenoise import DenoiseSettings, run_self_denoising

    titles = []

    def capture(fig, path, dpi=110):
        import matplotlib.pyplot as plt

        titles.extend([fig.get_suptitle(), *(ax.get_title() for ax in fig.axes)])
        plt.close(fig)

    monkeypatch.setattr(selfdenoise_figures, "save_figure", capture)
    tables = {"csv": tmp_path / "t.csv", "md": tmp_path / "t.md", "rounds": tmp_path / "r.csv"}
    run_self_denoising(
        worlds / source / "noldo", worlds / source / "dw", tmp_path / "rounds", tmp_path / "export", tables,
        tmp_path / "rounds.png", TrainSettings(width=4, steps=2, batch_size=2, crop_size=16),
        DenoiseSettings(rounds=1, stride=8, context=8, anchor_samples=8, anchor_sketch_dim=16),
    )
    markdown = tables["md"].read_text()
    assert ("Synthetic world" in markdown) == (source == "synthetic") and data_banner(source) in markdown
    assert markdown.splitlines()[0] == f"# Self-denoising rounds (spec netsimilarity.md §5.b) — {source_tag(source)}"
    assert set(pd.read_csv(tables["csv"])["data"]) == {source}
    assert f"Self-denoising rounds — {source_tag(source)}" in titles
    if source == "local":
        assert not any("synthetic" in t.lower() for t in titles)


def test_image_preview_true_colour_s1_false_colour_and_grey():
    from eolabels.similarity.report import image_preview

    ramp = np.arange(100, dtype=np.float64).reshape(10, 10)
    s2 = np.stack([ramp * (b + 1) for b in range(4)])  # bands B2 B3 B4 B8
    rgb, shown = image_preview(s2, ["B2", "B3", "B4", "B8"])
    assert shown == "B4/B3/B2" and rgb.shape == (10, 10, 3)
    # every channel is the same ramp after the 2-98 % stretch: 0 at the 2nd percentile, 1 at the 98th
    low, high = np.percentile(ramp, [2, 98])
    np.testing.assert_allclose(rgb[..., 0], np.clip((ramp - low) / (high - low), 0, 1))
    vv, vh = -10 + 0.1 * ramp, -20 + 0.05 * ramp
    false_colour, shown = image_preview(np.stack([vv, vh]), ["VV", "VH"])
    assert shown == "VV/VH/VV-VH"
    diff = vv - vh
    lo, hi = np.percentile(diff, [2, 98])
    np.testing.assert_allclose(false_colour[..., 2], np.clip((diff - lo) / (hi - lo), 0, 1))
    grey, shown = image_preview(np.stack([ramp]), ["NIR"])
    assert shown == "NIR" and np.array_equal(grey[..., 0], grey[..., 2])
