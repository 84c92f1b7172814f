"""Spatial-temporal label smoothing of CromSS (spec §4, paper Eqs. 13–15).

The prior S is computed on the dataset side in NumPy, per tile and before augmentation, from the
four season labels: a Gaussian-blurred one-hot map of the chosen season (spatial, Eq. 14) and of
the per-pixel class frequency over all seasons (temporal, Eq. 15), each renormalised over classes.
The smoothed target ỹ (Eq. 13) is built in torch on the training side from the hard label and S.
"""

from __future__ import annotations

from typing import Literal, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from torch import Tensor

from eolabels.cromss.checks import check_labels

PriorKind = Literal["ts", "t", "s"]
PRIOR_SIGMA = 3.0
PRIOR_TRUNCATE = 4.0


def onehot_map(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """(…, H, W) integer labels → (…, C, H, W) float32 one-hot; ids outside 0..C−1 are an error."""
    labels = np.asarray(labels)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        bad = labels[(labels < 0) | (labels >= num_classes)].flat[0]
        raise ValueError(f"label id {int(bad)} out of range 0..{num_classes - 1}")
    eye = np.eye(num_classes, dtype=np.float32)
    return np.moveaxis(eye[labels.astype(np.int64)], -1, -3)


def blur_and_normalise(class_maps: np.ndarray, sigma: float = PRIOR_SIGMA,
                       truncate: float = PRIOR_TRUNCATE) -> np.ndarray:
    """N(G ∗ M): Gaussian-blur each class channel of a (C, H, W) map, then divide by the class sum.

    σ = 3, truncate = 4 (a 25×25 kernel) and scipy's default ``mode='reflect'``, as in the
    reference's ``gaussian_filter`` call (§4); the channels are blurred separately.
    """
    maps = np.asarray(class_maps, dtype=np.float32)
    blurred = np.stack(
        [ndimage.gaussian_filter(m, sigma=sigma, truncate=truncate, mode="reflect") for m in maps]
    )
    return blurred / blurred.sum(axis=0, keepdims=True)


def spatial_prior(season_label: np.ndarray, num_classes: int = 9) -> np.ndarray:
    """P_s = N(G ∗ onehot(L_s)) of the chosen season's (H, W) label (Eq. 14)."""
    return blur_and_normalise(onehot_map(season_label, num_classes))


def temporal_prior(season_labels: np.ndarray, num_classes: int = 9) -> np.ndarray:
    """P_t = N(G ∗ mean_t onehot(L_t)) over all seasons (T, H, W), the chosen one included (Eq. 15)."""
    season_labels = np.asarray(season_labels)
    if season_labels.ndim != 3:
        raise ValueError(f"season labels must be (T, H, W), got shape {season_labels.shape}")
    return blur_and_normalise(onehot_map(season_labels, num_classes).mean(axis=0))


def label_smoothing_prior(
    season_labels: np.ndarray, season: int, kind: PriorKind = "ts", num_classes: int = 9
) -> np.ndarray:
    """The (C, H, W) float32 prior S: ``ts`` = (P_t + P_s)/2, ``t`` = P_t, ``s`` = P_s (§4)."""
    season_labels = np.asarray(season_labels)
    if season_labels.ndim != 3:
        raise ValueError(f"season labels must be (T, H, W), got shape {season_labels.shape}")
    if not 0 <= season < season_labels.shape[0]:
        raise ValueError(f"season {season} out of range 0..{season_labels.shape[0] - 1}")
    if kind == "s":
        return spatial_prior(season_labels[season], num_classes)
    if kind == "t":
        return temporal_prior(season_labels, num_classes)
    if kind == "ts":
        return (temporal_prior(season_labels, num_classes)
                + spatial_prior(season_labels[season], num_classes)) / 2
    raise ValueError(f"unknown label smoothing prior {kind!r}; expected 'ts', 't' or 's'")


def smoothed_target(
    labels: Tensor, prior: Tensor | None, factors: Sequence[float], num_classes: int = 9
) -> Tensor:
    """Smoothed target ỹ (B, C, H, W) from hard labels (B, H, W) and the prior S (Eq. 13).

    ``factors`` is the reference's ``--label_smoothing_factor`` list:
    [β, α] → (1 − β − α)·onehot + β·S + α/C;  [β] with a prior → (1 − β)·onehot + β·S;
    [α] without a prior → (1 − α)·onehot + α/C.
    """
    if labels.dim() != 3:
        raise ValueError(f"labels must be (B, H, W), got shape {tuple(labels.shape)}")
    if prior is not None and prior.shape != (labels.shape[0], num_classes, *labels.shape[1:]):
        raise ValueError(
            f"prior shape {tuple(prior.shape)} does not match labels {tuple(labels.shape)} "
            f"with {num_classes} classes"
        )
    check_labels(labels, num_classes)
    dtype = prior.dtype if prior is not None else torch.float32
    onehot = F.one_hot(labels.long(), num_classes).permute(0, 3, 1, 2).to(dtype)
    factors = [float(f) for f in factors]
    if prior is None:
        if len(factors) != 1:
            raise ValueError(f"without a prior give one factor [alpha], got {factors}")
        (alpha,) = factors
        return (1.0 - alpha) * onehot + alpha / num_classes
    if len(factors) == 1:
        (beta,) = factors
        return (1.0 - beta) * onehot + beta * prior
    if len(factors) == 2:
        beta, alpha = factors
        return (1.0 - beta - alpha) * onehot + beta * prior + alpha / num_classes
    raise ValueError(f"give one or two smoothing factors ([beta] or [beta, alpha]), got {factors}")
