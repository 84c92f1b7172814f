"""Kernel properties (spec §5.0 E3) and hand-worked cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from eolabels.similarity.kernel import (
    feature_map,
    hard_count,
    less_soft_count,
    neighbour_counts,
    normalized_kernel_matrix,
    rotation_tolerant_similarity,
    self_kernel_inverse_sqrt,
    similarity_matrix,
    soft_count,
    trace_similarity,
    whiten_jacobians,
)


def random_jacobians(n: int = 12, d: int = 3, m: int = 40, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    # correlated rows so that similarities spread over [-1, 1] instead of all being ~0
    base = torch.randn(1, d, m, generator=gen, dtype=torch.float64)
    return base + 0.8 * torch.randn(n, d, m, generator=gen, dtype=torch.float64)


@pytest.mark.parametrize("d", [1, 3])
def test_self_similarity_symmetry_and_bounds(d):
    sim = similarity_matrix(feature_map(random_jacobians(d=d))[0])
    torch.testing.assert_close(
        torch.diag(sim), torch.ones(12, dtype=torch.float64), rtol=0, atol=1e-13
    )
    torch.testing.assert_close(sim, sim.T, rtol=0, atol=1e-14)
    assert sim.abs().max() <= 1 + 1e-13
    assert sim.min() < 0.5 < sim.fill_diagonal_(0).max()  # the test data is not degenerate


def test_whitened_columns_are_orthonormal():
    whitened, n_clamped = whiten_jacobians(random_jacobians())
    eye = torch.eye(3, dtype=torch.float64).expand(12, 3, 3)
    torch.testing.assert_close(whitened.transpose(1, 2) @ whitened, eye, rtol=0, atol=1e-12)
    assert n_clamped == 0


def test_feature_map_equals_trace_of_normalised_kernel():
    jac_a, jac_b = random_jacobians(seed=1), random_jacobians(n=5, seed=2)
    via_phi = feature_map(jac_a)[0] @ feature_map(jac_b)[0].T
    via_matrix = trace_similarity(normalized_kernel_matrix(jac_a, jac_b))
    torch.testing.assert_close(via_phi, via_matrix, rtol=0, atol=1e-13)


def test_inverse_sqrt_by_hand_for_a_diagonal_kernel():
    # rows orthogonal with norms 2 and 3: K = diag(4, 9), K^{-1/2} = diag(1/2, 1/3)
    jac = torch.tensor([[[2.0, 0, 0], [0, 3.0, 0]]], dtype=torch.float64)
    inv_sqrt, _ = self_kernel_inverse_sqrt(jac)
    torch.testing.assert_close(
        inv_sqrt[0], torch.diag(torch.tensor([0.5, 1 / 3], dtype=torch.float64))
    )


def test_rank_deficient_jacobian_is_clamped_and_reported():
    jac = torch.tensor([[[1.0, 2.0, 0.0], [2.0, 4.0, 0.0]]], dtype=torch.float64)  # rank 1
    phi, n_clamped = feature_map(jac)
    assert n_clamped == 1
    assert torch.isfinite(phi).all()
    # the null direction contributes ~nothing: |phi|^2 = rank / d
    assert float(phi.norm() ** 2) == pytest.approx(0.5, abs=1e-5)


def test_orthogonal_output_rotation_leaves_k_unchanged_but_scaling_does_not():
    jac = random_jacobians()
    q, _ = torch.linalg.qr(
        torch.randn(3, 3, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    )
    sim = similarity_matrix(feature_map(jac)[0])
    rotated = similarity_matrix(feature_map(q @ jac)[0])
    torch.testing.assert_close(rotated, sim, rtol=0, atol=1e-12)
    scaled = similarity_matrix(
        feature_map(torch.diag(torch.tensor([1.0, 5.0, 0.2], dtype=torch.float64)) @ jac)[0]
    )
    assert (scaled - sim).abs().max() > 1e-3


def test_rotation_tolerant_similarity_recovers_a_rotated_copy():
    jac = random_jacobians(n=2)
    angle = 0.7
    rot = torch.tensor(
        [[math.cos(angle), -math.sin(angle), 0], [math.sin(angle), math.cos(angle), 0], [0, 0, 1]],
        dtype=torch.float64,
    )
    pair = torch.stack([jac[0], rot @ jac[0]])
    normalized = normalized_kernel_matrix(pair)
    assert float(trace_similarity(normalized)[0, 1]) == pytest.approx((2 * math.cos(angle) + 1) / 3)
    assert float(rotation_tolerant_similarity(normalized)[0, 1]) == pytest.approx(1.0)


def test_duplicated_fixture_input_has_similarity_one(fixtures_dir):
    with np.load(fixtures_dir / "netsim_cases.npz") as z:
        grads = {d: z[f"grads_d{d}"] for d in (2, 3)} | {1: z["grads_1d"][:, :, None]}
    for grad in grads.values():
        jac = torch.from_numpy(grad).transpose(1, 2)
        sim = similarity_matrix(feature_map(jac)[0])
        assert float(sim[0, 1]) == pytest.approx(1.0, abs=1e-13)
        assert float(sim[0, 2]) < 1 - 1e-6


def test_counts_by_hand():
    sim = torch.tensor([[1.0, 0.95, -0.5], [0.95, 1.0, 0.2], [-0.5, 0.2, 1.0]], dtype=torch.float64)
    assert hard_count(sim, 0.9).tolist() == [2, 2, 1]
    assert hard_count(sim, 0.9, exclude_self=True).tolist() == [1, 1, 0]
    assert hard_count(sim, 0.95).tolist() == [1, 1, 1]  # strict '>' as the reference code
    assert hard_count(sim, 1.0, exclude_self=True).tolist() == [0, 0, 0]
    torch.testing.assert_close(
        soft_count(sim), torch.tensor([1.45, 2.15, 0.7], dtype=torch.float64)
    )
    torch.testing.assert_close(
        soft_count(sim, exclude_self=True), torch.tensor([0.45, 1.15, -0.3], dtype=torch.float64)
    )
    torch.testing.assert_close(
        less_soft_count(sim, 2),
        torch.tensor([1 + 0.9025, 1 + 0.9025 + 0.04, 1 + 0.04], dtype=torch.float64),
    )


def test_blockwise_counts_match_full_matrix():
    phi = feature_map(random_jacobians(n=30))[0]
    sim = similarity_matrix(phi, block_rows=7)
    torch.testing.assert_close(sim, phi @ phi.T)
    counts = neighbour_counts(
        phi, thresholds=(0.5, 0.9), powers=(3,), exclude_self=True, block_rows=7
    )
    torch.testing.assert_close(counts["soft"], soft_count(sim, exclude_self=True))
    assert counts["hard_t0.9"].tolist() == hard_count(sim, 0.9, exclude_self=True).tolist()
    torch.testing.assert_close(counts["less_soft_n3"], less_soft_count(sim, 3, exclude_self=True))


def test_integral_of_hard_counts_over_tau_is_clipped_soft_count():
    # spec §2.1: integral_0^1 N_tau dtau = sum_j max(k_ij, 0); midpoint rule, n_tau points
    sim = similarity_matrix(feature_map(random_jacobians(n=40, d=2))[0])
    n_tau = 200
    taus = (torch.arange(n_tau, dtype=torch.float64) + 0.5) / n_tau
    integral = sum(hard_count(sim, float(t)) for t in taus).double() / n_tau
    clipped = sim.clamp(0, 1).sum(1)
    assert float((integral - clipped).abs().max() / sim.shape[1]) <= 1 / n_tau
