"""Cross-modal sample selection of CromSS (spec §3, paper Eqs. 8–12).

Each modality d ∈ {S1, S2} scores every pixel twice from its own detached prediction: how sure it
is at all (entity confidence, Eq. 9) and how much it believes the noisy label (label confidence,
Eq. 8).  Both scores are strengthened where the other modality agrees (Eq. 10).  The label scores
become the per-pixel weights of the segmentation losses by class-wise thresholding (Eq. 11); the
entity scores become the weights of the consistency loss the *other* modality learns from (Eq. 12).

Tensors are (B, C, H, W) logits and (B, H, W) int64 labels; every mask is (B, H, W) float.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from eolabels.cromss.checks import check_labels
from eolabels.cromss.schedules import RampKind, selection_ramp, selection_ratio

ConfidenceKind = Literal["ce", "gini"]


def _check_logits_labels(logits: Tensor, labels: Tensor) -> None:
    if logits.dim() != 4:
        raise ValueError(f"logits must be (B, C, H, W), got shape {tuple(logits.shape)}")
    if labels.shape != (logits.shape[0], *logits.shape[2:]):
        raise ValueError(
            f"labels shape {tuple(labels.shape)} does not match logits {tuple(logits.shape)}"
        )
    check_labels(labels, logits.shape[1])


def entropy_confidence(logits: Tensor) -> Tensor:
    """Entity confidence m^ent = clamp(1 − H(p)/log C, 0, 1), H = −Σ_c p log p (Eq. 9, ``ce``).

    Uses 0·log 0 := 0; the reference raises a NameError on that NaN path instead (spec §3.1).
    """
    p = torch.softmax(logits, dim=1)
    entropy = -torch.special.xlogy(p, p).sum(dim=1)
    return (1.0 - entropy / math.log(logits.shape[1])).clamp(0.0, 1.0)


def gini_confidence(logits: Tensor) -> Tensor:
    """Entity confidence m^ent = Σ_c p_c² (Eq. 9 variant ``gini``)."""
    p = torch.softmax(logits, dim=1)
    return (p * p).sum(dim=1)


def entity_confidence(logits: Tensor, kind: ConfidenceKind = "ce") -> Tensor:
    """Entity confidence of Eq. 9 of the kind chosen by ``--sample_selection_confidence_type``."""
    if kind == "ce":
        return entropy_confidence(logits)
    if kind == "gini":
        return gini_confidence(logits)
    raise ValueError(f"unknown entity confidence type {kind!r}; expected 'ce' or 'gini'")


def label_confidence(logits: Tensor, labels: Tensor) -> Tensor:
    """Label confidence m^lbl_i = p_{i, y_i} for the hard noisy label y (Eq. 8)."""
    _check_logits_labels(logits, labels)
    p = torch.softmax(logits, dim=1)
    return p.gather(1, labels.long().unsqueeze(1)).squeeze(1)


def cross_modal_enhancement(confidence: Tensor, other_confidence: Tensor) -> Tensor:
    """m̃^d = (m^d + m^d·m^{d'})/2: a pixel stays confident only where the other modality agrees (Eq. 10)."""
    if confidence.shape != other_confidence.shape:
        raise ValueError(
            f"confidence maps differ in shape: {tuple(confidence.shape)} vs "
            f"{tuple(other_confidence.shape)}"
        )
    return (confidence + confidence * other_confidence) / 2.0


def classwise_label_weights(
    enhanced_label_confidence: Tensor,
    labels: Tensor,
    ratio: float,
    num_classes: int,
    zero_k_weight: float = 0.0,
) -> Tensor:
    """Segmentation weights by class-wise label thresholding (Eq. 11, ``class_balanced=True``).

    For each class c with n_c pixels in the batch, τ_c is the k_c-th largest enhanced label
    confidence among them, k_c = floor(n_c·r); weights are clip(m̃/τ_c, 0, 1), so the top k_c
    pixels of each class get 1.  ``zero_k_weight`` is the weight of a class with k_c = 0 (n_c·r < 1):
    0 reproduces the reference, 1 keeps such rare classes at full weight.
    ``ratio`` = 1 gives all ones and 0 gives m̃ itself, as in the reference, always as float.
    """
    if enhanced_label_confidence.shape != labels.shape:
        raise ValueError(
            f"confidence shape {tuple(enhanced_label_confidence.shape)} does not match labels "
            f"{tuple(labels.shape)}"
        )
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"selection ratio must lie in [0, 1], got {ratio}")
    check_labels(labels, num_classes)
    conf = enhanced_label_confidence
    if ratio == 1.0:
        # float: the reference returns int64 ones here (spec §3.4)
        return torch.ones_like(conf)
    if ratio == 0.0:
        return conf.clone()
    # one sort of (class, confidence) keys instead of a masked top-k per class: class c's pixels
    # form the block [start_c, start_c + n_c) in ascending order, its k_c-th largest at the end
    flat_labels = labels.reshape(-1).long()
    counts = torch.bincount(flat_labels, minlength=num_classes)
    k = torch.floor(counts.to(torch.float64) * ratio).long()  # floor, as the reference's int()
    keys = torch.sort(flat_labels.to(torch.float64) * 2.0 + conf.reshape(-1).to(torch.float64)).values
    starts = torch.cumsum(counts, 0) - counts
    at = (starts + counts - k).clamp(max=max(keys.numel() - 1, 0))
    tau = (keys[at] - 2.0 * torch.arange(num_classes, dtype=torch.float64, device=conf.device)).to(conf.dtype)
    tau_i, k_i = tau[labels.long()], k[labels.long()]
    weights = torch.where(tau_i > 0, (conf / tau_i.where(tau_i > 0, torch.ones_like(tau_i))).clamp(0.0, 1.0),
                          torch.ones_like(conf))
    # quirk of models/pl_pretrain_mm_sscom.py (_get_selection_mask_by_label_confidence): k_c = 0
    return torch.where(k_i == 0, torch.full_like(conf, zero_k_weight), weights)


def entity_weights(enhanced_entity_confidence: Tensor, ramp: float) -> Tensor:
    """Consistency weights w^ent = (1 − λ) + λ·m̃^ent (Eq. 12); λ = 1 after the ramp gives m̃^ent."""
    return (1.0 - ramp) + ramp * enhanced_entity_confidence


@dataclass(frozen=True)
class SelectionConfig:
    """Sample-selection settings (spec §3; defaults are the paper's run)."""

    confidence: ConfidenceKind = "ce"
    ramp: RampKind = "exp"
    rampdown_epochs: int = 80
    final_ratio: float = 0.5
    zero_k_weight: float = 0.0


@dataclass(frozen=True)
class SelectionWeights:
    """Per-pixel weights of one step: ``segmentation[d]`` weighs CE_d and Dice_d,
    ``entity[d]`` weighs the consistency term in which modality d is the teacher."""

    segmentation: tuple[Tensor, Tensor]
    entity: tuple[Tensor, Tensor]


@torch.no_grad()
def cross_modal_selection(
    logits_s1: Tensor, logits_s2: Tensor, labels: Tensor, epoch: int, config: SelectionConfig
) -> SelectionWeights:
    """All CromSS masks of one training step (§3 steps 1–5), computed without gradients."""
    if logits_s1.shape != logits_s2.shape:
        raise ValueError(
            f"S1 logits {tuple(logits_s1.shape)} and S2 logits {tuple(logits_s2.shape)} differ in shape"
        )
    logits = (logits_s1.detach().float(), logits_s2.detach().float())
    num_classes = logits_s1.shape[1]
    ent = [entity_confidence(x, config.confidence) for x in logits]
    lbl = [label_confidence(x, labels) for x in logits]
    ent_enh = (cross_modal_enhancement(ent[0], ent[1]), cross_modal_enhancement(ent[1], ent[0]))
    lbl_enh = (cross_modal_enhancement(lbl[0], lbl[1]), cross_modal_enhancement(lbl[1], lbl[0]))
    ratio = selection_ratio(epoch, config.final_ratio, config.rampdown_epochs, config.ramp)
    ramp = selection_ramp(config.ramp, epoch, config.rampdown_epochs)
    return SelectionWeights(
        segmentation=(
            classwise_label_weights(lbl_enh[0], labels, ratio, num_classes, config.zero_k_weight),
            classwise_label_weights(lbl_enh[1], labels, ratio, num_classes, config.zero_k_weight),
        ),
        entity=(entity_weights(ent_enh[0], ramp), entity_weights(ent_enh[1], ramp)),
    )
