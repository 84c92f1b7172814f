"""One pretraining sample from a location's seasons (spec §4–5, ``SSL4EODataset.__getitem__``).

:func:`assemble_sample` is the dataset-independent core: given the chosen season's imagery (already
scaled to [0, 1]) and the labels of every season, it computes the label-smoothing prior on the full
tile, augments prior, image and label jointly, and returns the dict the trainer consumes:
``{"s1", "s2", "label", "prior"}`` (each modality only if given, the prior only if asked for, and
``truth`` when a hidden truth map rides along for evaluation).

:func:`pretrain_sample` reproduces the reference's input format: uint8 S1 (4, 2, H, W), uint8 S2
(4, 13, H, W) and uint8 noisy labels (4, H, W), inputs = uint8/255.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from eolabels.cromss.augmentation import augment_jointly
from eolabels.cromss.normalization import uint8_to_unit
from eolabels.cromss.smoothing import PriorKind, label_smoothing_prior

N_SEASONS = 4
S1_BANDS = 2
# label and truth travel through the geometric augmentation as one nearest-neighbour channel
_TRUTH_CODE = 256


def assemble_sample(
    images: Mapping[str, np.ndarray],
    label_seasons: np.ndarray,
    season: int,
    prior_kind: PriorKind | None = "ts",
    rng: np.random.Generator | None = None,
    crop_size: int | None = 256,
    num_classes: int = 9,
    truth: np.ndarray | None = None,
    prior: np.ndarray | None = None,
) -> dict[str, Tensor]:
    """The trainer's sample for ``season``; augmented only when an ``rng`` is given.

    ``prior``, the (C, H, W) label-smoothing prior of this season when the caller keeps it (it
    depends on the labels only), saves computing it again; by default it is computed here.

    ``images`` maps modality names to (C, H, W) float32 arrays of the chosen season; their channels
    are stacked in the given order behind the prior so one transform moves all of them (§4).
    The prior uses every season of ``label_seasons`` (T, H, W); with T = 1 the temporal prior is
    the spatial prior of that season.  ``truth`` (H, W) follows the label's geometry exactly.
    """
    label_seasons = np.asarray(label_seasons)
    if label_seasons.ndim != 3:
        raise ValueError(f"season labels must be (T, H, W), got shape {label_seasons.shape}")
    if not 0 <= season < label_seasons.shape[0]:
        raise ValueError(f"season {season} out of range 0..{label_seasons.shape[0] - 1}")
    tile = label_seasons.shape[1:]
    for name, image in images.items():
        if image.ndim != 3 or image.shape[1:] != tile:
            raise ValueError(f"{name} image {image.shape} and labels {label_seasons.shape} differ in tile size")
    if truth is not None and truth.shape != tile:
        raise ValueError(f"truth {truth.shape} and labels {label_seasons.shape} differ in tile size")
    channels = [np.asarray(image, dtype=np.float32) for image in images.values()]
    if prior_kind is not None:
        # prior channels go first so one transform moves prior and image together (§4)
        if prior is None:
            prior = label_smoothing_prior(label_seasons, season, prior_kind, num_classes)
        channels.insert(0, prior)
    stacked = np.concatenate(channels)
    label = label_seasons[season].astype(np.int64)
    if truth is not None:
        label = label + _TRUTH_CODE * truth.astype(np.int64)
    if rng is not None:
        stacked, label = augment_jointly(stacked, label, rng, crop_size)
    offset = num_classes if prior_kind is not None else 0
    sample: dict[str, Tensor] = {}
    for name, image in images.items():
        sample[name] = torch.from_numpy(np.ascontiguousarray(stacked[offset:offset + image.shape[0]]))
        offset += image.shape[0]
    sample["label"] = torch.from_numpy(np.ascontiguousarray(label % _TRUTH_CODE))
    if truth is not None:
        sample["truth"] = torch.from_numpy(np.ascontiguousarray(label // _TRUTH_CODE))
    if prior_kind is not None:
        sample["prior"] = torch.from_numpy(np.ascontiguousarray(stacked[:num_classes]))
    return sample


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
    """The reference's sample from its uint8 LMDB arrays (4 seasons, inputs = uint8/255, §5)."""
    s1_seasons, s2_seasons = np.asarray(s1_seasons), np.asarray(s2_seasons)
    label_seasons = np.asarray(label_seasons)
    _check_location(s1_seasons, s2_seasons, label_seasons)
    if not 0 <= season < N_SEASONS:
        raise ValueError(f"season {season} out of range 0..{N_SEASONS - 1}")
    images = {
        "s1": uint8_to_unit(s1_seasons[season]),
        "s2": uint8_to_unit(s2_seasons[season][list(s2_bands)]),
    }
    return assemble_sample(images, label_seasons, season, prior_kind, rng, crop_size, num_classes)
