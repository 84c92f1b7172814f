"""Kernel means, denoising factors and shift (spec netsimilarity.md §3.3), their classification
analogue (§3.4), and the self-denoising round logic (§5.b) over in-memory tensors.

All functions take the **unnormalised** per-sample Jacobians ``jac`` (n x d x m) of the trained
network over the training samples; the kernel is ``K_ij = J_i J_j^T`` (d x d), self included.
Kernel means cost O(n m d) through ``sum_j K_ij = J_i (sum_j J_j)^T``; denoising factors need
every pair and are computed in row blocks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from eolabels.similarity.jacobian import centring_basis

UNLABELLED = 255


def _kernel_row_sums(jac: Tensor, rows: slice | None = None) -> Tensor:
    """``sum_j K_ij`` (n x d x d) for the samples ``rows``."""
    part = jac if rows is None else jac[rows]
    return torch.einsum("iam,bm->iab", part, jac.sum(dim=0))


def kernel_mean(jac: Tensor, values: Tensor) -> Tensor:
    """``E_k[a]_i = (sum_j K_ij)^{-1} sum_j K_ij a_j``, n x d (spec §3.3).

    ``values`` is n x d (or n for d = 1).
    """
    vals = values.reshape(jac.shape[0], jac.shape[1]).to(jac)
    weighted = torch.einsum("jam,ja->m", jac, vals)
    numer = torch.einsum("iam,m->ia", jac, weighted)
    return torch.linalg.solve(_kernel_row_sums(jac), numer)


def denoising_factor_matrices(jac: Tensor, block_rows: int = 256) -> Tensor:
    """``S_i = sum_j W_ij^T W_ij`` with ``W_ij = (sum_l K_il)^{-1} K_ij``, n x d x d (spec §3.3).

    The transposed order of the authors' code; ``tr(S_i)`` equals ``tr(sum_j W_ij W_ij^T)``, and
    ``sigma^2 sum_j W_ij W_ij^T`` is the covariance of the kernel-averaged noise ``E_k[eps]_i``.
    """
    n, d, _ = jac.shape
    out = jac.new_empty(n, d, d)
    starts = range(0, n, block_rows)
    for start in tqdm(starts, desc="denoising factors", disable=len(starts) < 8, leave=False):
        rows = slice(start, min(start + block_rows, n))
        kernel = torch.einsum("iam,jbm->ijab", jac[rows], jac)
        weights = torch.linalg.solve(_kernel_row_sums(jac, rows).unsqueeze(1), kernel)
        out[rows] = torch.einsum("ijba,ijbc->iac", weights, weights)
    return out


def denoising_factor(jac: Tensor, block_rows: int = 256) -> Tensor:
    """Scalar denoising factor ``rho_i = sqrt(tr(S_i) / d)`` (spec §3.3); d = 1:
    ``||k_i.||_2 / |sum_j k_ij|`` with the unnormalised kernel."""
    factors = denoising_factor_matrices(jac, block_rows)
    return (torch.diagonal(factors, dim1=1, dim2=2).sum(-1) / jac.shape[1]).sqrt()


def effective_sample_size(rho: Tensor) -> Tensor:
    """Effective number of averaged labels ``n_eff = 1 / rho^2`` (spec §3.3)."""
    return rho.pow(-2)


def shift(jac: Tensor, predictions: Tensor, noisy_labels: Tensor) -> Tensor:
    """``|y^_i - E_k[y~]_i|`` per sample (spec §3.3): the prediction's offset from the
    kernel-averaged
    noisy labels."""
    preds = predictions.reshape(jac.shape[0], jac.shape[1]).to(jac)
    return torch.linalg.vector_norm(preds - kernel_mean(jac, noisy_labels), dim=1)


def neighbour_consistency(jac: Tensor, predictions: Tensor) -> Tensor:
    """``|y^_i - E_k[y^]_i|``: the shift evaluated with predictions in place of noisy labels, as
    the authors' code does (spec §3.3; equal to ``shift`` at convergence)."""
    return shift(jac, predictions, predictions)


def stationarity_residual(jac: Tensor, predictions: Tensor, noisy_labels: Tensor) -> float:
    """``|E_k[y^] - E_k[y~]| / |E_k[y~]|`` over all samples (Frobenius norms) (spec §3.3, §5.b).

    Zero at a stationary point of the L2 loss (and, with logit Jacobians and probabilities, of
    softmax cross-entropy, §3.4).
    """
    mean_labels = kernel_mean(jac, noisy_labels)
    diff = kernel_mean(jac, predictions) - mean_labels
    return float(torch.linalg.norm(diff) / torch.linalg.norm(mean_labels))


def centred_one_hot(labels: Tensor, num_classes: int, dtype: torch.dtype = torch.float64) -> Tensor:
    """``U^T onehot(y)``, n x (C-1): labels in the gauge-free coordinates of centred logits
    (§1.3, §3.4)."""
    onehot = torch.nn.functional.one_hot(labels.long(), num_classes).to(dtype)
    return onehot @ centring_basis(num_classes, dtype)


def kernel_label_average(jac: Tensor, labels: Tensor, num_classes: int) -> Tensor:
    """Kernel-weighted average of the one-hot labels, n x C (spec §3.4).

    ``jac`` are Jacobians of the centred logits (d = C - 1).  At a stationary point of
    cross-entropy the predicted probabilities equal this average; rows sum to 1 (entries may leave
    [0, 1] because kernel weights can be negative).
    """
    if jac.shape[1] != num_classes - 1:
        raise ValueError(
            f"centred-logit Jacobians have d = C - 1 = {num_classes - 1}, got {jac.shape[1]}"
        )
    centred = kernel_mean(jac, centred_one_hot(labels, num_classes, jac.dtype))
    return centred @ centring_basis(num_classes, jac.dtype).T.to(jac.device) + 1.0 / num_classes


# --- self-denoising rounds (spec §5.b) -------------------------------------------------------


def relabel(
    probabilities: Tensor,
    original_labels: Tensor,
    confidence: float = 0.0,
    density_gate: Tensor | None = None,
    ignore_index: int = UNLABELLED,
) -> Tensor:
    """``D_{r+1} = argmax p^`` where ``max p^ >= confidence`` and the density gate is open, else
    ``D_0`` (spec §5.b).  ``probabilities`` N x C x ..., labels and gate N x ...; unlabelled
    pixels of ``D_0`` stay unlabelled."""
    top, predicted = probabilities.max(dim=1)
    accept = (top >= confidence) & (original_labels != ignore_index)
    if density_gate is not None:
        accept &= density_gate.to(torch.bool)
    return torch.where(accept, predicted.to(original_labels.dtype), original_labels)


def changed_fraction(old: Tensor, new: Tensor, ignore_index: int = UNLABELLED) -> float:
    """Fraction of labelled pixels whose label changed between two rounds (spec §5.b)."""
    labelled = old != ignore_index
    return float((old[labelled] != new[labelled]).double().mean()) if labelled.any() else 0.0


def class_histogram(labels: Tensor, num_classes: int, ignore_index: int = UNLABELLED) -> np.ndarray:
    """Pixel count per class, unlabelled pixels dropped."""
    values = labels[labels != ignore_index].long().cpu()
    return np.bincount(values.numpy(), minlength=num_classes)[:num_classes]


def collapsed_classes(
    reference: Tensor,
    labels: Tensor,
    num_classes: int,
    min_share: float = 0.01,
    max_loss: float = 0.3,
) -> list[int]:
    """Classes with at least ``min_share`` of ``reference`` pixels that lose more than ``max_loss``
    of that share in ``labels`` (the collapse guard of spec §5.b, B3)."""
    ref = class_histogram(reference, num_classes)
    new = class_histogram(labels, num_classes)
    ref_share = ref / max(ref.sum(), 1)
    new_share = new / max(new.sum(), 1)
    return [
        c
        for c in range(num_classes)
        if ref_share[c] >= min_share and new_share[c] < (1 - max_loss) * ref_share[c]
    ]


@dataclass
class DenoisingRound:
    """Result of one self-denoising round: the new labels ``D_{r+1}`` and its bookkeeping."""

    index: int
    labels: Tensor
    changed_fraction: float
    class_histogram: np.ndarray
    models: list[Any]


def self_denoising_round(
    inputs: Tensor,
    original_labels: Tensor,
    current_labels: Tensor,
    train: Callable[[Tensor, Tensor, int], Any],
    predict: Callable[[Any, Tensor], Tensor],
    num_classes: int,
    round_index: int,
    confidence: float = 0.0,
    density: Callable[[Any, Tensor], Tensor] | None = None,
    cross_fit_folds: int = 1,
    seed: int = 0,
) -> DenoisingRound:
    """One round of spec §5.b: train fresh on ``D_r`` (``current_labels``), predict on all training
    inputs, relabel ``D_0`` (``original_labels``) under the confidence and density gates.

    ``train(inputs, labels, seed) -> model`` starts from a fresh initialisation (seed offset per
    round and fold); ``predict(model, inputs) -> probabilities`` (N x C x ...).  ``density(model,
    inputs)`` returns N_S per sample/pixel; the gate keeps pixels at or above its median.  With
    ``cross_fit_folds = k > 1`` every fold is predicted by a model trained on the other folds.
    """
    n = inputs.shape[0]
    if cross_fit_folds < 1 or cross_fit_folds > n:
        raise ValueError(f"cross_fit_folds must be in 1..{n}, got {cross_fit_folds}")
    folds = (
        torch.randperm(n, generator=torch.Generator().manual_seed(seed + round_index))
        % cross_fit_folds
    )
    probabilities = gate = None
    models = []
    for fold in range(cross_fit_folds):
        held_out = folds == fold
        fit_on = ~held_out if cross_fit_folds > 1 else held_out
        model = train(inputs[fit_on], current_labels[fit_on], seed + 1000 * round_index + fold)
        models.append(model)
        fold_probabilities = predict(model, inputs[held_out])
        if probabilities is None:
            probabilities = fold_probabilities.new_empty(n, *fold_probabilities.shape[1:])
        probabilities[held_out] = fold_probabilities
        if density is not None:
            fold_density = density(model, inputs[held_out])
            if gate is None:
                gate = fold_density.new_empty(n, *fold_density.shape[1:])
            gate[held_out] = fold_density
    density_gate = None if gate is None else gate >= gate.median()
    labels = relabel(probabilities, original_labels, confidence, density_gate)
    return DenoisingRound(
        index=round_index,
        labels=labels,
        changed_fraction=changed_fraction(current_labels, labels),
        class_histogram=class_histogram(labels, num_classes),
        models=models,
    )


def self_denoise(
    inputs: Tensor,
    labels: Tensor,
    train: Callable[[Tensor, Tensor, int], Any],
    predict: Callable[[Any, Tensor], Tensor],
    num_classes: int,
    rounds: int = 3,
    min_changed_fraction: float = 0.005,
    **round_options: Any,
) -> list[DenoisingRound]:
    """Rounds ``r = 0 .. rounds-1`` of spec §5.b from ``D_0 = labels``; stops early once fewer than
    ``min_changed_fraction`` of the pixels change.  ``round_options`` go to
    ``self_denoising_round``."""
    history: list[DenoisingRound] = []
    current = labels
    for r in range(rounds):
        result = self_denoising_round(
            inputs, labels, current, train, predict, num_classes, r, **round_options
        )
        history.append(result)
        current = result.labels
        if result.changed_fraction < min_changed_fraction:
            break
    return history
