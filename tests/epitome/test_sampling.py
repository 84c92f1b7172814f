"""Categorical draws of epitome positions (spec §5): the two-level inverse-CDF sampler."""

from __future__ import annotations

import pytest
import torch

from eolabels.epitome.model import posterior
from eolabels.epitome.sampling import inverse_cdf_samples, sample_positions, sample_positions_from_log_joint


def frequencies_within_bounds(draws: torch.Tensor, weights: torch.Tensor, sigmas: float = 5.0) -> bool:
    """Each position's count is within ``sigmas`` binomial standard deviations of n·w/Σw."""
    n = draws.numel()
    p = weights.double() / weights.double().sum()
    counts = torch.bincount(draws, minlength=weights.numel()).double()
    bound = sigmas * torch.sqrt(n * p * (1 - p)) + 1.0  # +1: a stray draw on a p ≈ 1/n position
    return bool(((counts - n * p).abs() <= bound).all())


ROW = 37  # positions per row of the two-level draw


def test_draws_follow_the_weights_across_rows_and_never_hit_zero_weight():
    g = torch.Generator().manual_seed(0)
    size = 29 * ROW
    weights = torch.rand(3, size, generator=g) ** 3
    weights[:, ::4] = 0
    weights[1, ROW:] = 0  # patch 1: every row after the first empty
    weights[2] = 0
    weights[2, size - 1] = 2.5  # patch 2: a point mass on the very last position
    draws = inverse_cdf_samples(weights.view(3, 29, ROW), 60000, torch.Generator().manual_seed(1))
    assert draws.shape == (3, 60000) and draws.dtype == torch.int64
    assert not bool((weights.gather(1, draws) == 0).any())
    assert bool((draws[2] == size - 1).all())
    assert frequencies_within_bounds(draws[0], weights[0])
    assert frequencies_within_bounds(draws[1], weights[1])
    # first-row share, worked out from the weights: Σ_{s < 37} w_s / Σ_s w_s
    share = float(weights[0, :ROW].sum() / weights[0].sum())
    assert abs(float((draws[0] < ROW).double().mean()) - share) < 5 * (share * (1 - share) / 60000) ** 0.5
    strided = torch.zeros(3, 29, 2 * ROW)  # the same weights read through a strided view
    strided[..., :ROW] = weights.view(3, 29, ROW)
    again = inverse_cdf_samples(strided[..., :ROW], 60000, torch.Generator().manual_seed(1))
    assert torch.equal(draws, again)


def test_single_row_draws_and_a_fixed_seed_repeat():
    weights = torch.tensor([[[0.0, 1.0, 3.0]], [[5.0, 0.0, 0.0]]])
    draws = inverse_cdf_samples(weights, 40000, torch.Generator().manual_seed(2))
    assert bool((draws[1] == 0).all())
    assert abs(float((draws[0] == 2).double().mean()) - 0.75) < 0.01
    again = inverse_cdf_samples(weights, 40000, torch.Generator().manual_seed(2))
    assert torch.equal(draws, again)


def test_sampling_from_the_log_joint_equals_sampling_the_posterior():
    g = torch.Generator().manual_seed(3)
    energies = 40 * torch.randn(2, 5, 9, 13, generator=g, dtype=torch.float64)  # L×B×H×W, two layers
    q = posterior(energies, temperature=4.0)
    from_q = sample_positions(q, 500, torch.Generator().manual_seed(4))
    from_e = sample_positions_from_log_joint(energies, 500, 4.0, torch.Generator().manual_seed(4))
    # same uniforms, weights equal up to each row's normaliser: only a rounding tie could differ
    assert (from_q == from_e).double().mean() > 0.999
    assert int(from_e.max()) < 2 * 9 * 13


def test_far_below_the_peak_energies_are_drawn_with_negligible_probability():
    energies = torch.full((1, 1, 40, 40), -1e6)
    energies[0, 0, 7, 9] = 0.0  # float32 exp of the rest is clamped at e^-87, not a denormal
    draws = sample_positions_from_log_joint(energies, 1000, 1.0, torch.Generator().manual_seed(5))
    assert bool((draws == 7 * 40 + 9).all())
    assert energies[0, 0, 7, 9] == 0.0 and energies[0, 0, 0, 0] == -1e6  # input untouched by default


def test_sampling_in_the_log_joint_memory_gives_the_same_draws():
    g = torch.Generator().manual_seed(6)
    wide = 30 * torch.randn(2, 3, 6, 11, generator=g)  # L×B×H×n, read as W = 8 columns (an FFT-path view)
    before = wide.clone()
    energies = wide[..., :8]
    expected = sample_positions_from_log_joint(energies.clone(), 300, 2.0, torch.Generator().manual_seed(7))
    got = sample_positions_from_log_joint(energies, 300, 2.0, torch.Generator().manual_seed(7), overwrite_input=True)
    assert torch.equal(got, expected)
    weights = torch.exp(((before[..., :8] - before[..., :8].amax(dim=(0, 2, 3), keepdim=True)) / 2.0).clamp_min(-87))
    assert torch.allclose(wide[..., :8], weights)  # the weights were written in place …
    assert torch.equal(wide[..., 8:], before[..., 8:])  # … and nothing beyond the view was touched


def test_invalid_weights_are_refused_and_empty_requests_are_empty():
    energies = torch.zeros(1, 2, 3, 4)
    energies[0, 1, 2, 3] = float("nan")
    with pytest.raises(ValueError, match="finite"):
        sample_positions_from_log_joint(energies, 5)
    with pytest.raises(ValueError, match="not all zero"):
        sample_positions(torch.zeros(1, 2, 3, 4), 5)
    with pytest.raises(ValueError, match="non-negative"):
        sample_positions(torch.tensor([[[[0.5, -0.1, 0.6]]]]), 5)
    assert sample_positions(torch.rand(1, 0, 3, 4), 5).shape == (0, 5)
    assert sample_positions(torch.rand(1, 2, 3, 4), 0).shape == (2, 0)
