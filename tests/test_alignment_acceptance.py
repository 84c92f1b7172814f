"""Acceptance checks of spec netsimilarity.md §5.c that fit in CI, on a small synthetic world (six
64-px training tiles, three test tiles) with the tiny network (P = 2, bases 8/4/8, input 76 -> 20)
trained ~300 iterations at one scale with A = 2 px.

* C6: the end-point error on the map's boundary pixels must drop by >= 30 % against no correction.
  Measured (issue 13): EPE 0.894 -> 0.893 px (-0.1 %) -- the scale-1 network stays at the
  zero-prediction level on the synthetic S2 imagery (fed the true boundaries as its image it learns,
  slowly). The pairs are consistent (the warped map equals the unwarped one moved by the target on
  every valid output pixel), yet within 300 steps no recipe tried learns even from an exact oracle
  image (the unwarped map's class channels): Adam lr 1e-3 / 3e-3 / 1e-2, BatchNorm or GroupNorm in
  the conv blocks, batch 4-16, correlation lengths 16-64 px, no class channels, or a plain 6-layer
  CNN on the joined inputs all stay at held-out weighted-EPE ratios >= 0.95 to the zero prediction;
  the oracle with BatchNorm reaches 0.78 after 2,000 steps, and on large 3-class blobs instead of the
  world's fragmented maps (30 % boundary pixels) 0.82 after 300. The threshold is the spec's and is
  kept; the miss is a strict xfail, so a change that meets it turns this test red until the mark goes.
* C4 negative control: the same constant shift added to every map is not corrected (the rounds learn
  the maps against themselves, so an offset shared by all of them is unidentifiable without an
  absolute reference): the misregistration left after alignment stays within 0.3 px of the constant.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from eolabels.alignment.channels import boundary_mask
from eolabels.alignment.rounds import AlignSettings, align_all, score, train_chain
from eolabels.alignment.tiles import AlignDataset, load_align_dataset
from eolabels.alignment.trainer import NetworkSettings, ScaleTrainSettings
from eolabels.alignment.warp import backward_warp, residual_field
from eolabels.alignment.world import synthetic_osm_world

SETTINGS = AlignSettings(scales=(1,), overlap=4)
TRAIN = ScaleTrainSettings(steps=300, batch_size=4, learning_rate=1e-3, steps_per_epoch=300, amplitude_px=2.0)
TINY = NetworkSettings(pool_count=2, image_base=8, map_base=4, common_base=8)
CONSTANT_SHIFT = (1.0, -1.0)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    base = tmp_path_factory.mktemp("c6")
    return synthetic_osm_world(base, {"n_train": 6, "n_test": 3, "tile_size": 64},
                               {"misregistration_px": 2.0, "misregistration_scale": 16.0}, seed=0, test_tiles=3)


def train_and_align(dataset: AlignDataset, out_dir):
    torch.set_num_threads(1)
    nets = train_chain(dataset, [t.labels for t in dataset.tiles], SETTINGS, TRAIN, TINY, out_dir, seed=0,
                       progress=False)
    return align_all(dataset, nets, SETTINGS.overlap)


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="C6 missed: EPE 0.894 -> 0.893 px (reduction 0.1 %) after 300 iterations "
                   "(spec: >= 30 %)")
def test_c6_one_scale_tiny_network_reduces_the_end_point_error(world, tmp_path):
    dataset = load_align_dataset(world, "osm")
    scores = score(dataset, train_and_align(dataset, tmp_path), SETTINGS.scales)["all"]
    before, after = scores["epe_before_px"], scores["epe_after_px"]
    assert before > 0.5
    assert scores["epe_reduction"] >= 0.30, f"EPE {before:.3f} -> {after:.3f} px"


@pytest.mark.slow
def test_c4_a_shift_shared_by_every_map_is_not_corrected(world, tmp_path):
    dataset = load_align_dataset(world, "osm")
    constant = np.asarray(CONSTANT_SHIFT, dtype=np.float32)
    for tile in dataset.tiles:  # every map: the registered one moved by the same constant
        tile.field = np.broadcast_to(constant[:, None, None], (2, *tile.truth.shape)).copy()
        tile.labels = backward_warp(tile.truth, tile.field, dataset.nodata)
    results = train_and_align(dataset, tmp_path)
    left = []
    for tile, result in zip(dataset.tiles, results):
        inner = np.zeros(tile.labels.shape, dtype=bool)
        inner[2:-2, 2:-2] = True  # away from the nodata the shift brings in at the tile's edge
        left.append(residual_field(tile.field, result.field)[:, boundary_mask(tile.labels, dataset.nodata) & inner])
    mean = np.concatenate(left, axis=1).mean(axis=1)
    assert np.hypot(*(mean - constant)) <= 0.3, f"misregistration left {mean} vs the shared shift {constant}"
