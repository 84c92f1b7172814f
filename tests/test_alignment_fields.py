"""Random smooth fields (spec §4.4), backward warping and field algebra (§4.2), hand-checkable cases."""

from __future__ import annotations

import numpy as np
import pytest

from eolabels.alignment.fields import FieldRequestError, bump_count, min_max_stretch, random_smooth_field
from eolabels.alignment.pairs import flip_field, rotate_field
from eolabels.alignment.warp import (
    align_labels,
    backward_warp,
    compose_fields,
    downsample_field,
    downsample_labels,
    residual_field,
    sample_field,
    upsample_field,
)

NODATA = 255


def constant(shape, dy, dx):
    return np.stack([np.full(shape, dy, np.float32), np.full(shape, dx, np.float32)])


def test_constant_field_moves_the_raster_by_exactly_k_pixels():
    labels = np.arange(36, dtype=np.uint8).reshape(6, 6)
    out = backward_warp(labels, constant((6, 6), 0, 2), NODATA)
    # out[y, x] = labels[y, x + 2]: the map content moves 2 px to the left, nodata enters on the right
    assert np.array_equal(out[:, :4], labels[:, 2:])
    assert (out[:, 4:] == NODATA).all()
    out = backward_warp(labels, constant((6, 6), -1, 0), NODATA)
    assert np.array_equal(out[1:], labels[:-1]) and (out[0] == NODATA).all()


def test_alignment_undoes_a_known_shift_inside_the_tile():
    labels = np.arange(64, dtype=np.uint8).reshape(8, 8)
    field = constant((8, 8), 1, -2)
    misregistered = backward_warp(labels, field, NODATA)  # M_mis(q) = M(q + D(q))
    aligned = align_labels(misregistered, field, NODATA)  # M_al(p) = M_mis(p - D(p))
    inside = aligned != NODATA
    assert np.array_equal(aligned[inside], labels[inside])
    assert inside.sum() == (8 - 1) * (8 - 2)  # only the strips shifted out are lost


def test_nearest_rounding_of_fractional_displacements():
    labels = np.array([[10, 20, 30, 40]], dtype=np.uint8)
    out = backward_warp(labels, constant((1, 4), 0, 0.6), NODATA)  # x + 0.6 rounds to x + 1
    assert out.tolist() == [[20, 30, 40, NODATA]]
    out = backward_warp(labels, constant((1, 4), 0, 0.4), NODATA)
    assert out.tolist() == [[10, 20, 30, 40]]


def test_grids_must_agree():
    with pytest.raises(ValueError, match="different grids"):
        backward_warp(np.zeros((4, 4), np.uint8), np.zeros((2, 5, 4), np.float32), NODATA)


def test_sample_field_is_bilinear_with_border_values():
    field = np.zeros((2, 2, 2))
    field[0] = [[0.0, 1.0], [2.0, 3.0]]
    value = sample_field(field, np.array([0.5, 5.0]), np.array([0.5, -3.0]))
    assert value[0].tolist() == [1.5, 2.0]  # centre: mean of the four; outside: clamped to (1, 0)


def test_composing_two_constant_fields_adds_them():
    new, old = constant((5, 5), 1.0, 0.0), constant((5, 5), 0.5, -2.0)
    assert np.allclose(compose_fields(new, old), constant((5, 5), 1.5, -2.0))


def test_composition_equals_aligning_twice():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 6, (40, 40)).astype(np.uint8)
    old, new = constant((40, 40), 2, 1), constant((40, 40), -1, 3)
    twice = align_labels(align_labels(labels, old, NODATA), new, NODATA)
    once = align_labels(labels, compose_fields(new, old), NODATA)
    valid = twice != NODATA  # the two-step warp also loses what its intermediate map moved out
    assert np.array_equal(twice[valid], once[valid]) and valid[6:-6, 6:-6].all()


def test_residual_of_a_perfect_prediction_is_zero_and_of_none_is_the_field():
    true = constant((6, 6), 1.5, -0.5)
    assert np.allclose(residual_field(true, true), 0)
    assert np.allclose(residual_field(true, np.zeros_like(true)), true)


def test_field_resampling_scales_the_values():
    coarse = constant((3, 3), 1.0, -0.5)
    fine = upsample_field(coarse, 4)
    assert fine.shape == (2, 12, 12) and np.allclose(fine, constant((12, 12), 4.0, -2.0))
    assert np.allclose(downsample_field(fine, 4), coarse)


def test_label_downsampling_takes_each_blocks_mode():
    labels = np.array([[1, 1, 2, 2], [1, 3, 2, NODATA], [NODATA, NODATA, 0, 0], [NODATA, 4, 0, 0]], np.uint8)
    assert downsample_labels(labels, 2).tolist() == [[1, 2], [NODATA, 0]]


def test_bump_count_keeps_the_reference_density():
    assert bump_count(128, 0.054 * 128) == 30  # the reference: 30 bumps of std 0.054 x side
    assert bump_count(64, 16) == 4  # floor of 4


def test_min_max_stretch_reaches_both_ends():
    assert min_max_stretch(np.array([2.0, 3.0, 6.0])).tolist() == [-1.0, -0.5, 1.0]
    assert min_max_stretch(np.ones(3)).tolist() == [0.0, 0.0, 0.0]


def test_random_field_reaches_plus_minus_amplitude_and_is_smooth():
    rng = np.random.default_rng(0)
    field = random_smooth_field(rng, (64, 64), 2.0, 16.0)
    assert field.shape == (2, 64, 64) and field.dtype == np.float32
    assert np.allclose(field.min(axis=(1, 2)), -2.0) and np.allclose(field.max(axis=(1, 2)), 2.0)
    # smooth: neighbouring pixels differ by a small fraction of the range
    assert np.abs(np.diff(field, axis=2)).max() < 0.5
    again = random_smooth_field(np.random.default_rng(0), (64, 64), 2.0, 16.0)
    assert np.array_equal(field, again)


def test_field_request_larger_than_the_tile_is_refused():
    with pytest.raises(FieldRequestError, match="larger than the 8x8 tile"):
        random_smooth_field(np.random.default_rng(0), (8, 8), 8.0, 4.0)


def test_rotated_and_flipped_pairs_stay_consistent():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 5, (32, 32)).astype(np.uint8)
    field = random_smooth_field(rng, (32, 32), 2.0, 8.0)
    warped = backward_warp(labels, field, NODATA)
    for k in range(4):
        rotated = backward_warp(np.rot90(labels, k).copy(), np.ascontiguousarray(rotate_field(field, k)), NODATA)
        assert np.array_equal(rotated, np.rot90(warped, k))
    flipped = backward_warp(labels[:, ::-1].copy(), np.ascontiguousarray(flip_field(field)), NODATA)
    assert np.array_equal(flipped, warped[:, ::-1])
