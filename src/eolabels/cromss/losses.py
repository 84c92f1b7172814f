"""Losses of CromSS pretraining and of the downstream fine-tuning (spec §2 and §7).

Pretraining sums, over the S1 and S2 branches, a (selection-weighted) cross-entropy and soft Dice
against the noisy or label-smoothed target, plus a consistency term in which each branch learns
from the other's detached prediction, weighted by the teacher's entity mask:

    L = Σ_d [CE_d + Dice_d] + cl_weight · (Con_{1←2} + Con_{2←1})
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from eolabels.cromss.checks import check_labels
from eolabels.cromss.selection import SelectionWeights

ConsistencyKind = Literal["ce", "kl", "mse"]
FINETUNE_IGNORE_INDEX = 255


def _check_target(logits: Tensor, target: Tensor, ignore_index: int | None = None) -> None:
    if logits.dim() != 4:
        raise ValueError(f"logits must be (B, C, H, W), got shape {tuple(logits.shape)}")
    if target.dim() == 4:
        if target.shape != logits.shape:
            raise ValueError(
                f"soft target shape {tuple(target.shape)} does not match logits {tuple(logits.shape)}"
            )
        return
    if target.shape != (logits.shape[0], *logits.shape[2:]):
        raise ValueError(
            f"label shape {tuple(target.shape)} does not match logits {tuple(logits.shape)}"
        )
    labels = target if ignore_index is None else target[target != ignore_index]
    check_labels(labels, logits.shape[1])


def weighted_mean(values: Tensor, weights: Tensor | None) -> Tensor:
    """Σ w·v / Σ w over all pixels of the batch (spec §2); the plain mean when ``weights`` is None.

    An all-zero mask gives 0 rather than NaN (spec §2: "if a mask sums to 0 the term is 0").
    """
    if weights is None:
        return values.mean()
    total = weights.sum()
    if total == 0:
        return (values * weights).sum()
    return (values * weights).sum() / total


def pixel_cross_entropy(logits: Tensor, target: Tensor) -> Tensor:
    """ce_i = −Σ_c ỹ_ic log p_ic per pixel (B, H, W), for hard labels (B,H,W) or soft targets (B,C,H,W)."""
    _check_target(logits, target)
    if target.dim() == 4:
        return F.cross_entropy(logits, target.to(logits.dtype), reduction="none")
    return F.cross_entropy(logits, target.long(), reduction="none")


def soft_dice_loss(
    logits: Tensor,
    target: Tensor,
    weights: Tensor | None = None,
    ignore_index: int | None = None,
    smooth: float = 0.0,
    eps: float = 1e-7,
) -> Tensor:
    """Multiclass soft Dice from logits in the product form of the authors' ``SoftDiceLoss`` (§2).

    Per class, over batch and pixels together: I_c = Σ w p t, K_c = Σ (w p + w t),
    loss_c = 1 − (2 I_c + smooth)/max(K_c + smooth, eps), counted only for classes present in t;
    the mean runs over all C classes.  ``target`` is hard (B,H,W) or soft (B,C,H,W); pixels with
    label ``ignore_index`` are removed from both targets and predictions.
    """
    _check_target(logits, target, ignore_index)
    b, c = logits.shape[:2]
    probs = logits.log_softmax(dim=1).exp().reshape(b, c, -1)
    if target.dim() == 4:
        if ignore_index is not None:
            raise ValueError("ignore_index needs hard labels, got a soft (B, C, H, W) target")
        onehot = target.reshape(b, c, -1).to(probs.dtype)
    else:
        labels = target.reshape(b, -1).long()
        if ignore_index is not None:
            valid = (labels != ignore_index).unsqueeze(1).to(probs.dtype)
            labels = labels.masked_fill(labels == ignore_index, 0)
            probs = probs * valid
        onehot = F.one_hot(labels, c).permute(0, 2, 1).to(probs.dtype)
        if ignore_index is not None:
            onehot = onehot * valid
    present = onehot.sum(dim=(0, 2)) > 0
    if weights is not None and weights.shape != (b, *logits.shape[2:]):
        raise ValueError(
            f"weights shape {tuple(weights.shape)} does not match logits {tuple(logits.shape)}"
        )
    w = 1.0 if weights is None else weights.reshape(b, 1, -1).to(probs.dtype)
    intersection = (w * probs * onehot).sum(dim=(0, 2))
    cardinality = (w * (probs + onehot)).sum(dim=(0, 2))
    score = (2.0 * intersection + smooth) / (cardinality + smooth).clamp_min(eps)
    return ((1.0 - score) * present.to(score.dtype)).mean()


def segmentation_loss(logits: Tensor, target: Tensor, weights: Tensor | None = None) -> Tensor:
    """CE + Dice of one branch (``--loss_type cd``), both weighted by the selection mask (§2)."""
    return weighted_mean(pixel_cross_entropy(logits, target), weights) + soft_dice_loss(
        logits, target, weights
    )


def consistency_map(student_logits: Tensor, teacher_logits: Tensor, kind: ConsistencyKind = "ce") -> Tensor:
    """Unreduced consistency of the student towards the detached teacher (§2).

    ``ce``: −Σ_c sg[p^t] log p^s per pixel (B,H,W) — what the paper calls KL; it differs from KL by
    the teacher's entropy, so gradients agree.  ``kl``: p^t (log p^t − log p^s) and ``mse``:
    (p^s − sg[p^t])², both elementwise (B,C,H,W).
    """
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f"student logits {tuple(student_logits.shape)} and teacher logits "
            f"{tuple(teacher_logits.shape)} differ in shape"
        )
    log_student = student_logits.log_softmax(dim=1)
    log_teacher = teacher_logits.detach().log_softmax(dim=1)
    if kind == "ce":
        return -(log_teacher.exp() * log_student).sum(dim=1)
    if kind == "kl":
        return F.kl_div(log_student, log_teacher, reduction="none", log_target=True)
    if kind == "mse":
        return (log_student.exp() - log_teacher.exp()) ** 2
    raise ValueError(f"unknown consistency loss {kind!r}; expected 'ce', 'kl' or 'mse'")


def consistency_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    teacher_entity_weights: Tensor | None = None,
    kind: ConsistencyKind = "ce",
) -> Tensor:
    """Con_{s←t} = Σ con·w^{ent,t} / Σ w^{ent,t}, the teacher's mask broadcast over classes (§2).

    Without selection the divisor is the pixel count N: a per-pixel mean for ``ce`` and a per-pixel
    sum over classes for ``kl``/``mse``.  An all-zero mask gives 0.
    """
    con = consistency_map(student_logits, teacher_logits, kind)
    b, _, h, w = student_logits.shape
    if teacher_entity_weights is None:
        return con.sum() / (b * h * w)
    mask = teacher_entity_weights.to(con.dtype)
    mask_c = mask.unsqueeze(1) if con.dim() == 4 else mask
    total = mask.sum()
    if total == 0:
        return (con * mask_c).sum()
    return (con * mask_c).sum() / total


@dataclass(frozen=True)
class CromSSLoss:
    """Total pretraining loss and its logged parts (reference names in brackets)."""

    segmentation_s1: Tensor  # tr_segloss_1
    segmentation_s2: Tensor  # tr_segloss_2
    consistency_s1_from_s2: Tensor  # tr_conloss_2t: S1 student, S2 teacher
    consistency_s2_from_s1: Tensor  # tr_conloss_2i: S2 student, S1 teacher
    total: Tensor  # tr_loss

    def components(self) -> Tensor:
        """[seg_1, seg_2, seg, con_1←2, con_2←1, con, total], the reference's logging order."""
        seg = self.segmentation_s1 + self.segmentation_s2
        con = self.consistency_s1_from_s2 + self.consistency_s2_from_s1
        parts = [
            self.segmentation_s1, self.segmentation_s2, seg,
            self.consistency_s1_from_s2, self.consistency_s2_from_s1, con, self.total,
        ]
        return torch.stack([p.detach() for p in parts])


def cromss_loss(
    logits_s1: Tensor,
    logits_s2: Tensor,
    target: Tensor,
    selection: SelectionWeights | None = None,
    consistency: ConsistencyKind = "ce",
    consistency_weight: float = 1.0,
) -> CromSSLoss:
    """L = Σ_d [CE_d + Dice_d] + cl_weight·(Con_{1←2} + Con_{2←1}) (§2, §3.7).

    ``target`` is the hard noisy label (B,H,W) or the smoothed target ỹ (B,C,H,W).  With
    ``selection``, w^d weighs CE_d and Dice_d and the teacher's w^{ent} weighs each consistency
    term; without it every weight is 1 (the multi-modal baseline).
    """
    if logits_s1.shape != logits_s2.shape:
        raise ValueError(
            f"S1 logits {tuple(logits_s1.shape)} and S2 logits {tuple(logits_s2.shape)} differ in shape"
        )
    seg_w = selection.segmentation if selection is not None else (None, None)
    ent_w = selection.entity if selection is not None else (None, None)
    seg_1 = segmentation_loss(logits_s1, target, seg_w[0])
    seg_2 = segmentation_loss(logits_s2, target, seg_w[1])
    con_12 = consistency_loss(logits_s1, logits_s2, ent_w[1], consistency)
    con_21 = consistency_loss(logits_s2, logits_s1, ent_w[0], consistency)
    total = seg_1 + seg_2 + consistency_weight * (con_12 + con_21)
    return CromSSLoss(seg_1, seg_2, con_12, con_21, total)


def validation_loss(
    logits_s1: Tensor, logits_s2: Tensor, labels: Tensor, consistency: ConsistencyKind = "ce",
    consistency_weight: float = 1.0,
) -> Tensor:
    """``v_loss`` that drives ReduceLROnPlateau: hard labels, no smoothing, no selection (§2)."""
    if labels.dim() != 3:
        raise ValueError(f"validation needs hard labels (B, H, W), got shape {tuple(labels.shape)}")
    return cromss_loss(logits_s1, logits_s2, labels, None, consistency, consistency_weight).total


def finetune_loss(
    logits: Tensor, labels: Tensor, ignore_index: int | None = FINETUNE_IGNORE_INDEX
) -> tuple[Tensor, Tensor, Tensor]:
    """(total, CE, Dice) of fine-tuning: mean CE over valid pixels + Dice, both ignoring 255 (§7)."""
    _check_target(logits, labels, ignore_index)
    ce = F.cross_entropy(
        logits, labels.long(), ignore_index=-100 if ignore_index is None else ignore_index
    )
    dice = soft_dice_loss(logits, labels, ignore_index=ignore_index)
    return ce + dice, ce, dice
