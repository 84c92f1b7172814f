"""The network input-similarity kernel and neighbour counts (spec netsimilarity.md §1–§2.1).

Jacobians use the layout ``n x d x m``: sample, output component, parameter (or sketch) axis, so
row ``a`` of ``jac[i]`` is the gradient of output ``a`` at sample ``i`` (spec §1.2; the authors
store the transpose).  Everything here is a pure tensor function.

Self-inclusion (spec §2.1): counts are computed from a query-vs-reference similarity matrix and
include the query itself when it belongs to the reference set (its similarity to itself is 1).
``exclude_self=True`` removes it by subtracting 1 (hard counts: only if ``tau < 1``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import torch
from torch import Tensor
from tqdm.auto import tqdm

HARD_THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.925, 0.95, 0.975, 0.99)
LESS_SOFT_POWERS = (2, 3, 4)
EIGEN_FLOOR = 1e-12


def _check_jacobians(jac: Tensor, name: str = "jac") -> None:
    if jac.ndim != 3:
        raise ValueError(
            f"{name} must be n x d x m (sample, output, parameter), got {tuple(jac.shape)}"
        )


def self_kernel_inverse_sqrt(jac: Tensor, rel_floor: float = EIGEN_FLOOR) -> tuple[Tensor, int]:
    """``K(x_i, x_i)^{-1/2}`` for every sample, ``n x d x d`` (spec §1.2, §1.3 step 2).

    Symmetric inverse square root of ``K_ii = J_i J_i^T`` through ``eigh``; eigenvalues below
    ``rel_floor`` times the sample's largest are clamped there.  Returns the matrices and the
    number of eigenvalues clamped over all samples (rank-deficient Jacobians).
    """
    _check_jacobians(jac)
    gram = jac @ jac.transpose(1, 2)
    evals, evecs = torch.linalg.eigh(gram)
    tiny = torch.finfo(jac.dtype).tiny
    floor = (rel_floor * evals.amax(dim=1, keepdim=True)).clamp_min(tiny)
    n_clamped = int((evals < floor).sum())
    scale = evals.clamp_min(floor).rsqrt()
    return (evecs * scale.unsqueeze(1)) @ evecs.transpose(1, 2), n_clamped


def whiten_jacobians(jac: Tensor, rel_floor: float = EIGEN_FLOOR) -> tuple[Tensor, int]:
    """Whitened Jacobians ``A_i = J_i^T K_ii^{-1/2}``, n x m x d, orthonormal columns (§1.2)."""
    inv_sqrt, n_clamped = self_kernel_inverse_sqrt(jac, rel_floor)
    return jac.transpose(1, 2) @ inv_sqrt, n_clamped


def feature_map(jac: Tensor, rel_floor: float = EIGEN_FLOOR) -> tuple[Tensor, int]:
    """``phi(x_i) = vec(A_i) / sqrt(d)``, n x (m d), unit norm, ``k = phi . phi'`` (spec §1.2)."""
    whitened, n_clamped = whiten_jacobians(jac, rel_floor)
    n, _, d = whitened.shape
    return whitened.reshape(n, -1) / math.sqrt(d), n_clamped


def kernel_matrix(jac_a: Tensor, jac_b: Tensor | None = None) -> Tensor:
    """Unnormalised kernel ``K(x_i, x_j) = J_i J_j^T``, ``n_a x n_b x d x d`` (spec §1.2)."""
    _check_jacobians(jac_a, "jac_a")
    jac_b = jac_a if jac_b is None else jac_b
    _check_jacobians(jac_b, "jac_b")
    return torch.einsum("iam,jbm->ijab", jac_a, jac_b)


def normalized_kernel_matrix(jac_a: Tensor, jac_b: Tensor | None = None) -> Tensor:
    """``K^N(x_i, x_j) = K_ii^{-1/2} K_ij K_jj^{-1/2} = A_i^T A_j``, n_a x n_b x d x d (§1.2)."""
    whitened_a, _ = whiten_jacobians(jac_a)
    whitened_b = whitened_a if jac_b is None else whiten_jacobians(jac_b)[0]
    return torch.einsum("ima,jmb->ijab", whitened_a, whitened_b)


def trace_similarity(kernel: Tensor) -> Tensor:
    """Scalar similarity ``tr(K_ij) / d`` of a ``n_a x n_b x d x d`` kernel (spec §1.2, the code's
    ``scalar=True``); on ``K^N`` it is the normalised similarity ``k``, on ``K`` the
    unnormalised one.
    """
    return torch.diagonal(kernel, dim1=-2, dim2=-1).sum(-1) / kernel.shape[-1]


def rotation_tolerant_similarity(normalized_kernel: Tensor) -> Tensor:
    """``||K^N_ij||_* / d`` = max over orthogonal Q of ``tr(Q K^N_ij)/d`` (spec §1.2, ours).

    Only meaningful for geometric outputs (displacements), not class logits.
    """
    d = normalized_kernel.shape[-1]
    return torch.linalg.matrix_norm(normalized_kernel, ord="nuc") / d


def _row_blocks(n: int, block_rows: int, desc: str) -> Iterator[slice]:
    starts = range(0, n, block_rows)
    for start in tqdm(starts, desc=desc, disable=len(starts) < 8, leave=False):
        yield slice(start, min(start + block_rows, n))


def similarity_matrix(
    features_q: Tensor, features_r: Tensor | None = None, block_rows: int = 4096
) -> Tensor:
    """Normalised scalar similarities ``k(x_i, x_j) = phi_i . phi_j``, ``n_q x n_r`` (spec §1.2),
    computed in row blocks (spec §2.3 iii)."""
    features_r = features_q if features_r is None else features_r
    out = features_q.new_empty(features_q.shape[0], features_r.shape[0])
    for rows in _row_blocks(features_q.shape[0], block_rows, "similarity rows"):
        out[rows] = features_q[rows] @ features_r.T
    return out


def _self_term(count: Tensor, exclude_self: bool) -> Tensor:
    return count - 1 if exclude_self else count


def hard_count(similarity: Tensor, tau: float, exclude_self: bool = False) -> Tensor:
    """``N_tau(x_i) = #{j : k_ij > tau}`` (strict, as the code; spec §2.1), int64."""
    count = (similarity > tau).sum(dim=1)
    return count - 1 if exclude_self and tau < 1 else count


def soft_count(similarity: Tensor, exclude_self: bool = False) -> Tensor:
    """``N_S(x_i) = sum_j k_ij`` (spec §2.1)."""
    return _self_term(similarity.sum(dim=1), exclude_self)


def less_soft_count(similarity: Tensor, power: int, exclude_self: bool = False) -> Tensor:
    """``N_n(x_i) = sum_j max(k_ij, 0)^n`` (spec §2.1; the code's "less soft" counts)."""
    return _self_term(similarity.clamp_min(0).pow(power).sum(dim=1), exclude_self)


def neighbour_counts(
    features_q: Tensor,
    features_r: Tensor | None = None,
    thresholds: Sequence[float] = HARD_THRESHOLDS,
    powers: Sequence[int] = LESS_SOFT_POWERS,
    exclude_self: bool = False,
    block_rows: int = 2048,
) -> dict[str, Tensor]:
    """All estimators of spec §2.1 from feature maps without holding the ``n x n`` matrix.

    Keys: ``soft``, ``hard_t{tau}``, ``less_soft_n{n}`` (the code's names).  ``exclude_self``
    assumes the query set is part of the reference set.
    """
    features_r = features_q if features_r is None else features_r
    n = features_q.shape[0]
    out: dict[str, Tensor] = {"soft": features_q.new_empty(n)}
    out.update(
        {
            f"hard_t{t}": torch.empty(n, dtype=torch.int64, device=features_q.device)
            for t in thresholds
        }
    )
    out.update({f"less_soft_n{p}": features_q.new_empty(n) for p in powers})
    for rows in _row_blocks(n, block_rows, "neighbour counts"):
        sim = features_q[rows] @ features_r.T
        out["soft"][rows] = soft_count(sim, exclude_self)
        for t in thresholds:
            out[f"hard_t{t}"][rows] = hard_count(sim, t, exclude_self)
        for p in powers:
            out[f"less_soft_n{p}"][rows] = less_soft_count(sim, p, exclude_self)
    return out
