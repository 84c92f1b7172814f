"""Equivalence with the authors' functions (spec netsimilarity.md §5.0, E1 and E2).

``netsim_cases.npz`` holds outputs of the reference code (Lydorn/netsimilarity @ e54df8f) on tiny
networks; its ``meta_json`` names what each key is.  Our layout is n x d x p, the reference's
n x p x d.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from eolabels.similarity.denoise import denoising_factor_matrices, neighbour_consistency
from eolabels.similarity.density import SoftDensityAccumulator
from eolabels.similarity.jacobian import JacobianConfig, NetworkFingerprint, per_sample_jacobians
from eolabels.similarity.kernel import (
    feature_map,
    hard_count,
    kernel_matrix,
    less_soft_count,
    normalized_kernel_matrix,
    similarity_matrix,
    soft_count,
    trace_similarity,
)
from eolabels.similarity.toy import ToyMLP

REL_TOL = 1e-10
JAC_TOL = 1e-12


@pytest.fixture(scope="module")
def cases(fixtures_dir):
    with np.load(fixtures_dir / "netsim_cases.npz") as z:
        data = {k: z[k] for k in z.files}
    data["meta"] = json.loads(str(data.pop("meta_json")))
    return data


def rel_err(ours: torch.Tensor | np.ndarray, ref: np.ndarray) -> float:
    ours = ours.detach().numpy() if isinstance(ours, torch.Tensor) else np.asarray(ours)
    return float(np.abs(ours - ref).max() / max(np.abs(ref).max(), 1e-300))


def jacobians(cases, d: int) -> torch.Tensor:
    """n x d x p from the reference's n x p x d (``grads_1d`` is n x p)."""
    if d == 1:
        return torch.from_numpy(cases["grads_1d"])[:, None, :]
    return torch.from_numpy(cases[f"grads_d{d}"]).transpose(1, 2).contiguous()


def dummy_fingerprint() -> NetworkFingerprint:
    return NetworkFingerprint("a", "w", "all", 0, "None", False, None, None, 2)


# --- E1: every reference output from the reference gradients -----------------------------------


def test_e1_1d_similarity_matrix_has_zero_diagonal_convention(cases):
    phi, n_clamped = feature_map(jacobians(cases, 1))
    sim = similarity_matrix(phi)
    assert n_clamped == 0
    off_diagonal = sim - torch.diag(torch.diag(sim))
    assert rel_err(off_diagonal, cases["ref1d.sim_mat"]) <= REL_TOL
    assert rel_err(sim[0, 2], cases["ref1d.pair_0_2"]) <= REL_TOL


def test_e1_1d_counts_exclude_self_like_the_matrix_path(cases):
    sim = similarity_matrix(feature_map(jacobians(cases, 1))[0])
    for tau in cases["meta"]["hard_thresholds"]:
        np.testing.assert_array_equal(
            hard_count(sim, tau, exclude_self=True).numpy(), cases[f"ref1d.hard_t{tau}"]
        )
    assert rel_err(soft_count(sim, exclude_self=True), cases["ref1d.soft_from_mat"]) <= REL_TOL
    for n in cases["meta"]["less_soft_n"]:
        ours = less_soft_count(sim, n, exclude_self=True)
        assert rel_err(ours, cases[f"ref1d.less_soft_n{n}"]) <= REL_TOL


def test_e1_1d_two_pass_includes_self(cases):
    jac = jacobians(cases, 1)
    acc = SoftDensityAccumulator(dummy_fingerprint())
    acc.add(jac, dummy_fingerprint())
    soft = acc.soft_count(jac, dummy_fingerprint())
    for key in ("soft_2pass_norm", "soft_on_disk", "soft_multidim_on_disk"):
        assert rel_err(soft, cases[f"ref1d.{key}"]) <= REL_TOL
    assert rel_err(soft, cases["ref1d.soft_from_mat"] + 1) <= REL_TOL
    raw = acc.unnormalised_soft_count(jac, dummy_fingerprint())
    assert rel_err(raw, cases["ref1d.soft_2pass_raw"]) <= REL_TOL


@pytest.mark.parametrize("d", [2, 3])
def test_e1_multidim_kernels(cases, d):
    jac = jacobians(cases, d)
    ref = f"ref_d{d}."
    kernel = kernel_matrix(jac)
    normalized = normalized_kernel_matrix(jac)
    assert rel_err(kernel, cases[ref + "K_unnorm"]) <= REL_TOL
    assert rel_err(trace_similarity(kernel), cases[ref + "sim_scalar_unnorm"]) <= REL_TOL
    assert rel_err(normalized, cases[ref + "sim_mat_norm"]) <= REL_TOL
    assert rel_err(trace_similarity(normalized), cases[ref + "sim_scalar_norm"]) <= REL_TOL
    sim = similarity_matrix(feature_map(jac)[0])
    assert rel_err(sim, cases[ref + "sim_scalar_norm"]) <= REL_TOL


@pytest.mark.parametrize("d", [2, 3])
def test_e1_multidim_counts_include_self(cases, d):
    jac = jacobians(cases, d)
    sim = similarity_matrix(feature_map(jac)[0])
    for tau in cases["meta"]["hard_thresholds"]:
        np.testing.assert_array_equal(hard_count(sim, tau).numpy(), cases[f"ref_d{d}.hard_t{tau}"])
    acc = SoftDensityAccumulator(dummy_fingerprint())
    acc.add(jac, dummy_fingerprint())
    assert (
        rel_err(acc.soft_count(jac, dummy_fingerprint()), cases[f"ref_d{d}.soft_multidim"])
        <= REL_TOL
    )


@pytest.mark.parametrize("d", [2, 3])
def test_e1_denoising_factor_and_neighbour_consistency(cases, d):
    jac = jacobians(cases, d)
    factors = denoising_factor_matrices(jac, block_rows=5)
    assert rel_err(factors, cases[f"ref_d{d}.denoising_factor"]) <= REL_TOL
    consistency = neighbour_consistency(jac, torch.from_numpy(cases[f"preds_d{d}"]))
    assert rel_err(consistency, cases[f"ref_d{d}.neighbor_consistency"]) <= REL_TOL


# --- E2: our Jacobian extraction reproduces the reference gradients ----------------------------


def load_state(module: nn.Module, cases, prefix: str) -> nn.Module:
    state = {
        k[len(prefix) :]: torch.from_numpy(v) for k, v in cases.items() if k.startswith(prefix)
    }
    module.load_state_dict(state)
    return module


def test_e2_mlp_gradients(cases):
    # the reference Simple1DInputNet(capacity=8): 7 linear layers with ReLU, as our toy MLP
    mlp = load_state(ToyMLP(width=8, hidden_layers=6).double(), cases, "params_1d.")
    x = torch.from_numpy(cases["x_1d"])
    config = JacobianConfig(subset="all", pixel=None, centred=False)
    jac = per_sample_jacobians(mlp, x, config, batch_size=7)
    assert rel_err(mlp(x)[:, 0], cases["preds_1d"]) <= JAC_TOL
    assert rel_err(jac[:, 0, :], cases["grads_1d"]) <= JAC_TOL


@pytest.mark.parametrize("d", [2, 3])
def test_e2_cnn_jacobians_at_pixel_2_2(cases, d):
    cnn = nn.Sequential(
        nn.Conv2d(2, 4, 3), nn.Tanh(), nn.Conv2d(4, 4, 3), nn.Tanh(), nn.Conv2d(4, d, 1)
    )
    load_state(cnn.double(), cases, f"params_d{d}.")
    config = JacobianConfig(subset="all", pixel=(2, 2), centred=False)
    jac = per_sample_jacobians(cnn, torch.from_numpy(cases["x_patches"]), config, batch_size=10)
    assert jac.shape == (24, d, cases[f"grads_d{d}"].shape[1])
    assert rel_err(jac.transpose(1, 2), cases[f"grads_d{d}"]) <= JAC_TOL
