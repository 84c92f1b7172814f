"""Density audit (spec §5.a): label support, flags, coarse density maps; A3's unit test."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from eolabels.similarity.density import (
    accumulate_reference,
    audit_flags,
    density_grid,
    density_summary,
    extract_patches,
    grid_centres,
    label_support,
    score_patches,
)
from eolabels.similarity.jacobian import JacobianConfig


def test_label_support_by_hand():
    soft = torch.tensor([5.0, 5.0, 1.0, 3.0, 9.0])
    class_soft = torch.tensor([[4.0, 1.0], [4.0, 1.0], [1.0, 0.0], [-0.5, 3.5], [2.0, 7.0]])
    labels = torch.tensor([0, 1, 0, 0, 255])
    support = label_support(soft, class_soft, labels)
    # (4-1)/(5-1), (1-1)/4, no neighbours -> nan, (-0.5-1)/2 clipped to 0, unlabelled -> nan
    assert support[:2].tolist() == [0.75, 0.0]
    assert math.isnan(support[2]) and support[3] == 0.0 and math.isnan(support[4])


def test_flags_by_hand():
    training = torch.arange(1.0, 101.0)  # 5th percentile 5.95, median 50.5
    soft = torch.tensor([3.0, 60.0, 60.0, 40.0])
    support = torch.tensor([0.9, 0.4, 0.6, 0.1])
    flags = audit_flags(soft, support, training)
    assert flags["unreliable"].tolist() == [True, False, False, False]
    assert flags["suspicious_label"].tolist() == [False, True, False, False]
    assert set(audit_flags(soft, None, training)) == {"unreliable"}


def test_grid_patches_and_density_map():
    image = torch.arange(2 * 40 * 48, dtype=torch.float64).reshape(2, 40, 48)
    rows, cols = grid_centres(40, 48, stride=16)
    assert rows.tolist() == [8, 24] and cols.tolist() == [8, 24, 40]
    patches = extract_patches(image, rows, cols, context=16)
    assert patches.shape == (6, 2, 16, 16)
    # row-major grid order; the window centre is the grid pixel
    assert torch.equal(patches[4][:, 8, 8], image[:, 24, 24])
    assert torch.equal(patches[2][:, 8, 8], image[:, 8, 40])
    soft = torch.tensor([1.0, math.e, 10.0, -2.0, 0.5, 4.0])
    grid = density_grid(soft, 2, 3)
    assert grid.dtype == np.float32 and grid.shape == (2, 3)
    np.testing.assert_allclose(grid[0], [0.0, 1.0, math.log(10)], rtol=1e-6)
    assert np.isnan(grid[1, 0])
    summary = density_summary(grid)
    assert summary["median_log_density"] == pytest.approx(
        1.0
    )  # finite: log .5, 0, 1, log 4, log 10
    assert summary["p05_log_density"] == pytest.approx(
        np.percentile([math.log(0.5), 0, 1, math.log(4), math.log(10)], 5), rel=1e-6
    )


def test_a3_flipped_labels_have_the_lowest_support():
    # two separated clusters, 3 labels flipped; a classifier trained briefly on the noisy labels
    gen = torch.Generator().manual_seed(0)
    truth = torch.arange(2).repeat_interleave(30)
    x = torch.where(truth[:, None] == 0, -2.0, 2.0) + 0.5 * torch.randn(
        60, 2, generator=gen, dtype=torch.float64
    )
    flipped = torch.tensor([3, 17, 45])
    noisy = truth.clone()
    noisy[flipped] = 1 - noisy[flipped]
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 2)).double()
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(100):
        optimiser.zero_grad()
        nn.functional.cross_entropy(model(x), noisy).backward()
        optimiser.step()
    config = JacobianConfig(subset="all", pixel=None)
    acc = accumulate_reference(model, x, config, noisy, num_classes=2)
    soft, class_soft = score_patches(acc, model, x, config, with_classes=True)
    support = label_support(soft, class_soft, noisy)
    assert sorted(torch.argsort(support)[:3].tolist()) == flipped.tolist()
    assert support[flipped].max() < 0.5 < support[~torch.isin(torch.arange(60), flipped)].min()


def test_audit_of_an_smp_unet_tile_end_to_end(tmp_path):
    smp = pytest.importorskip("segmentation_models_pytorch")
    torch.manual_seed(0)
    model = smp.Unet(
        "resnet18",
        encoder_weights=None,
        in_channels=4,
        classes=5,
        encoder_depth=3,
        decoder_channels=(32, 16, 8),
    )
    tile = torch.randn(4, 64, 48)
    labels = torch.randint(0, 5, (64, 48))
    rows, cols = grid_centres(64, 48, stride=16)
    patches = extract_patches(tile, rows, cols, context=32)
    sample_labels = labels[rows][:, cols].reshape(-1)
    config = JacobianConfig()
    acc = accumulate_reference(model, patches, config, sample_labels, num_classes=5, batch_size=5)
    acc.save(tmp_path / "s_train.pt")
    soft, class_soft = score_patches(acc, model, patches, config, with_classes=True)
    assert soft.shape == (12,) and class_soft.shape == (12, 5)
    torch.testing.assert_close(class_soft.sum(1), soft, rtol=1e-4, atol=1e-4)
    support = label_support(soft, class_soft, sample_labels)
    assert ((support >= 0) & (support <= 1)).all()
    flags = audit_flags(soft, support, soft)
    assert flags["unreliable"].dtype == torch.bool
    grid = density_grid(soft, len(rows), len(cols))
    assert grid.shape == (4, 3) and np.isfinite(grid).all()
    # a model with another band count cannot use this accumulator
    other = smp.Unet(
        "resnet18",
        encoder_weights=None,
        in_channels=3,
        classes=5,
        encoder_depth=3,
        decoder_channels=(32, 16, 8),
    )
    with pytest.raises(ValueError, match="band count: 4 vs 3"):
        score_patches(acc, other, patches[:, :3], config)


def test_within_class_deciles_remove_the_class_confound():
    from eolabels.similarity.audit import decile_error_rates, within_class_decile_error_rates

    # class 0: dense (N_S 101..120), wrong at its two lowest and at 110-112, 118; class 1: sparse
    # (N_S 1..20), wrong only at its densest sample 20
    soft = np.concatenate([np.arange(101, 121), np.arange(1, 21)]).astype(float)
    classes = np.repeat([0, 1], 20)
    errors = np.isin(soft, [101, 102, 110, 111, 112, 118, 20])
    # plain deciles compare the classes: lowest = N_S 1-4 (no error), highest = 117-120 (one: 118)
    assert decile_error_rates(soft, errors) == (0.0, 0.25)
    # within each class: lowest = {101, 102} and {1, 2} -> 2/4; highest = {119, 120} and {19, 20} -> 1/4
    assert within_class_decile_error_rates(soft, errors, classes) == (0.5, 0.25)
    # classes under min_samples are left out; none left gives NaN
    low, high = within_class_decile_error_rates(soft, errors, classes, min_samples=21)
    assert np.isnan(low) and np.isnan(high)
