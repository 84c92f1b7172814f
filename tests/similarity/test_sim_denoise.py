"""Kernel means, denoising factors, shift and the classification analogue (spec §3.3, §3.4)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from eolabels.similarity.denoise import (
    centred_one_hot,
    denoising_factor,
    denoising_factor_matrices,
    effective_sample_size,
    kernel_label_average,
    kernel_mean,
    neighbour_consistency,
    shift,
    stationarity_residual,
)
from eolabels.similarity.jacobian import JacobianConfig, per_sample_jacobians


def random_jacobians(n: int = 9, d: int = 2, m: int = 15, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(1, d, m, generator=gen, dtype=torch.float64) + 0.5 * torch.randn(
        n, d, m, generator=gen, dtype=torch.float64
    )


def test_kernel_mean_matches_the_explicit_pairwise_formula():
    jac = random_jacobians()
    values = torch.randn(9, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    k = np.einsum("iam,jbm->ijab", jac.numpy(), jac.numpy())
    expected = np.stack(
        [
            np.linalg.solve(k[i].sum(0), sum(k[i, j] @ values[j].numpy() for j in range(9)))
            for i in range(9)
        ]
    )
    np.testing.assert_allclose(kernel_mean(jac, values).numpy(), expected, rtol=1e-12)
    # a constant field is its own kernel mean
    const = torch.tensor([0.3, -2.0], dtype=torch.float64).expand(9, 2)
    torch.testing.assert_close(kernel_mean(jac, const), const)


def test_scalar_denoising_factor_by_hand():
    # d = 1: rho_i = ||k_i.||_2 / |sum_j k_ij| with k_ij = g_i . g_j
    jac = random_jacobians(d=1)
    g = jac[:, 0, :]
    k = g @ g.T
    expected = k.norm(dim=1) / k.sum(1).abs()
    torch.testing.assert_close(denoising_factor(jac, block_rows=4), expected)
    # identical gradients for all n samples: uniform weights, rho = 1/sqrt(n), n_eff = n
    same = jac[:1].expand(16, 1, 15)
    torch.testing.assert_close(denoising_factor(same), torch.full((16,), 0.25, dtype=torch.float64))
    torch.testing.assert_close(
        effective_sample_size(denoising_factor(same)), torch.full((16,), 16.0, dtype=torch.float64)
    )


def test_denoising_factor_trace_is_order_independent():
    jac = random_jacobians(d=3)
    s = denoising_factor_matrices(jac)
    k = torch.einsum("iam,jbm->ijab", jac, jac)
    w = torch.linalg.solve(k.sum(1, keepdim=True), k)
    other_order = torch.einsum("ijab,ijcb->iac", w, w)  # sum_j W W^T, the covariance form
    torch.testing.assert_close(
        torch.diagonal(s, dim1=1, dim2=2).sum(-1),
        torch.diagonal(other_order, dim1=1, dim2=2).sum(-1),
    )
    assert (s - other_order).abs().max() > 1e-6  # the matrices themselves differ


def test_least_squares_fit_is_stationary_and_shift_decomposes():
    # linear model fitted exactly by least squares: sum_j K_ij (y^_j - y~_j) = 0 (spec §3.3)
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(40, 3, generator=gen, dtype=torch.float64)
    noisy = torch.sin(x.sum(1, keepdim=True)) + 0.3 * torch.randn(
        40, 1, generator=gen, dtype=torch.float64
    )
    design = torch.cat([x, torch.ones(40, 1, dtype=torch.float64)], dim=1)
    coef = torch.linalg.lstsq(design, noisy).solution
    model = nn.Linear(3, 1).double()
    with torch.no_grad():
        model.weight.copy_(coef[:3].T)
        model.bias.copy_(coef[3])
    jac = per_sample_jacobians(model, x, JacobianConfig(subset="all", pixel=None, centred=False))
    preds = model(x).detach()
    assert stationarity_residual(jac, preds, noisy) < 1e-12
    torch.testing.assert_close(shift(jac, preds, noisy), neighbour_consistency(jac, preds))
    # an unconverged model is not stationary
    assert stationarity_residual(jac, preds + 0.1 * x[:, :1], noisy) > 1e-2


def test_kernel_label_average_for_a_linear_classifier_by_hand():
    # linear logits: centred kernel (x.x' + 1) I, so the average is sum_j w_ij onehot_j
    x = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
    labels = torch.tensor([0, 1, 1])
    model = nn.Linear(2, 3).double()
    jac = per_sample_jacobians(model, x, JacobianConfig(subset="all", pixel=None))
    weights = x @ x.T + 1  # [[1,1,1],[1,2,1],[1,1,5]]
    weights = weights / weights.sum(1, keepdim=True)
    expected = weights @ torch.nn.functional.one_hot(labels, 3).double()
    average = kernel_label_average(jac, labels, 3)
    torch.testing.assert_close(average, expected)
    torch.testing.assert_close(average[0], torch.tensor([1 / 3, 2 / 3, 0], dtype=torch.float64))
    with pytest.raises(ValueError, match="d = C - 1"):
        kernel_label_average(jac, labels, 4)


def test_centred_one_hot_is_gauge_free():
    onehot = centred_one_hot(torch.tensor([2, 0]), 4)
    assert onehot.shape == (2, 3)
    torch.testing.assert_close(onehot.norm(dim=1) ** 2, torch.full((2,), 0.75, dtype=torch.float64))
