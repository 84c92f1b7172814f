"""Noisy-label and misregistration generators hit their targets and bounds."""

import numpy as np
import pytest

from eolabels.data.layout import LayoutParams, generate_layout
from eolabels.data.noise import displacement_field, missing_mask, noisy_labels, warp_labels
from eolabels.tables import load_transfer_matrix


@pytest.fixture(scope="module")
def truth():
    return generate_layout(np.random.default_rng(3), (96, 96), LayoutParams(feature_size=10)).classes


@pytest.mark.parametrize("target", [0.55, 0.70, 0.85])
@pytest.mark.parametrize("season", ["spring", "winter"])
def test_noisy_labels_hit_target_accuracy_within_2pt(truth, target, season):
    confusion = load_transfer_matrix(f"synthetic_dw_noise_{season}")[0]
    noisy = noisy_labels(np.random.default_rng(7), truth, confusion, target, shift_amplitude=1.5, blob_scale=6)
    accuracy = (noisy == truth).mean()
    assert abs(accuracy - target) <= 0.02, accuracy


def test_noise_is_structured_not_salt_and_pepper(truth):
    confusion = load_transfer_matrix("synthetic_dw_noise_summer")[0]
    noisy = noisy_labels(np.random.default_rng(0), truth, confusion, 0.7, 1.5, 6)
    wrong = noisy != truth
    # errors come in blobs: a wrong pixel's right neighbour is wrong far more often than chance
    same_as_neighbour = (wrong[:, 1:] & wrong[:, :-1]).sum() / wrong[:, :-1].sum()
    assert same_as_neighbour > 0.8
    # and they follow the confusion table: crops are mostly mislabelled as grass in summer (id 2)
    crops_wrong = noisy[(truth == 4) & wrong]
    assert crops_wrong.size > 50
    assert np.bincount(crops_wrong, minlength=9).argmax() == 2


def test_displacement_amplitude_within_bound():
    for amplitude in (0.5, 3.0, 7.0):
        field = displacement_field(np.random.default_rng(1), (64, 80), amplitude, scale=16)
        norm = np.sqrt((field**2).sum(0))
        assert norm.max() <= amplitude + 1e-5
        assert norm.max() >= amplitude - 1e-4  # the bound is reached, not just respected
        # smooth: neighbouring displacements differ by a small fraction of the amplitude
        assert np.abs(np.diff(field, axis=2)).max() < 0.25 * amplitude
    assert not displacement_field(np.random.default_rng(1), (8, 8), 0.0, 4).any()


def test_warp_with_constant_field_is_an_exact_shift():
    labels = np.arange(36, dtype=np.uint8).reshape(6, 6)
    field = np.zeros((2, 6, 6), np.float32)
    field[0], field[1] = 1.0, -2.0  # out[y, x] = labels[y + 1, x - 2]
    out = warp_labels(labels, field, fill=255)
    assert out[0, 2] == labels[1, 0] and out[4, 5] == labels[5, 3]
    assert (out[:, :2] == 255).all() and (out[5] == 255).all()


def test_missing_mask_fraction():
    mask = missing_mask(np.random.default_rng(2), (100, 100), 0.2, 8)
    assert abs(mask.mean() - 0.2) < 0.01
    assert not missing_mask(np.random.default_rng(2), (10, 10), 0.0, 8).any()


def test_bad_target_rejected(truth):
    with pytest.raises(ValueError, match="target accuracy"):
        noisy_labels(np.random.default_rng(0), truth, np.ones((9, 9)), 1.5, 1.0, 4)
