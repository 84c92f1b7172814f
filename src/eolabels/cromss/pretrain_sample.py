"""One pretraining sample from a location's four seasons (spec §4–5, ``SSL4EODataset.__getitem__``).

A reader supplies the stored arrays of one location: uint8 S1 (4, 2, H, W), uint8 S2 (4, 13, H, W)
and uint8 noisy labels (4, H, W).  This module picks the season's inputs (uint8/255), computes the
label-smoothing prior on the full tile, augments prior, image and label jointly, and returns the
dict the trainer consumes: ``{"s1", "s2", "label", "prior"}`` as torch tensors.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from eolabels.cromss.augmentation import augment_jointly
from eolabels.cromss.normalization import uint8_to_unit
from eolabels.cromss.smoothing import PriorKind, label_smoothing_prior

N_SEASONS = 4
S1_BANDS = 2


def _check_location(s1: np.ndarray, s2: np.ndarray, labels: np.ndarray) -> None:
    if s1.ndim != 4 or s2.ndim != 4 or labels.ndim != 3:
        raise ValueError(
            f"expected S1 (T, 2, H, W), S2 (T, 13, H, W), labels (T, H, W); got {s1.shape}, "
            f"{s2.shape}, {labels.shape}"
        )
    if not (s1.shape[0] == s2.shape[0] == labels.shape[0] == N_SEASONS):
        raise ValueError(f"need {N_SEASONS} seasons, got {s1.shape[0]}, {s2.shape[0]}, {labels.shape[0]}")
    if s1.shape[2:] != labels.shape[1:] or s2.shape[2:] != labels.shape[1:]:
        raise ValueError(f"S1 {s1.shape}, S2 {s2.shape} and labels {labels.shape} differ in tile size")
    if s1.shape[1] != S1_BANDS:
        raise ValueError(f"S1 must have {S1_BANDS} bands (VV, VH), got {s1.shape[1]}")


def pretrain_sample(
    s1_seasons: np.ndarray,
    s2_seasons: np.ndarray,
    label_seasons: np.ndarray,
    season: int,
    s2_bands: Sequence[int],
    prior_kind: PriorKind | None = "ts",
    rng: np.random.Generator | None = None,
    crop_size: int | None = 256,
    num_classes: int = 9,
) -> dict[str, Tensor]:
    """The trainer's sample for ``season``; augmented only when an ``rng`` is given.

    Without a prior (``prior_kind=None``) the ``prior`` entry is absent.  The prior is computed
    before augmentation on the whole tile, as in the reference.
    """
    s1_seasons, s2_seasons = np.asarray(s1_seasons), np.asarray(s2_seasons)
    label_seasons = np.asarray(label_seasons)
    _check_location(s1_seasons, s2_seasons, label_seasons)
    if not 0 <= season < N_SEASONS:
        raise ValueError(f"season {season} out of range 0..{N_SEASONS - 1}")
    channels = [uint8_to_unit(s1_seasons[season]), uint8_to_unit(s2_seasons[season][list(s2_bands)])]
    if prior_kind is not None:
        # prior channels go first so one transform moves prior and image together (§4)
        channels.insert(0, label_smoothing_prior(label_seasons, season, prior_kind, num_classes))
    stacked = np.concatenate(channels)
    label = label_seasons[season].astype(np.int64)
    if rng is not None:
        stacked, label = augment_jointly(stacked, label, rng, crop_size)
    n_prior = num_classes if prior_kind is not None else 0
    sample = {
        "s1": torch.from_numpy(np.ascontiguousarray(stacked[n_prior:n_prior + S1_BANDS])),
        "s2": torch.from_numpy(np.ascontiguousarray(stacked[n_prior + S1_BANDS:])),
        "label": torch.from_numpy(label),
    }
    if prior_kind is not None:
        sample["prior"] = torch.from_numpy(np.ascontiguousarray(stacked[:n_prior]))
    return sample
