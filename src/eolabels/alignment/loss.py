"""The masked, balanced losses of the scale network (spec netsimilarity.md §4.3, §5.c).

The displacement loss is a weighted squared error whose weights come from the **input**
(misaligned) map: class-boundary pixels 1, valid interior pixels 0.1, nodata 0, each channel first
divided by its pixel count in the sample (balancing), so a sample with few boundary pixels still
weighs its boundaries fully. Deep-supervision levels are summed with level coefficients that follow
the reference's piecewise schedule (levels 0/1/2 at 2.5 / 5 / 7.5 % of the run).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

BOUNDARY_WEIGHT = 1.0
INTERIOR_WEIGHT = 0.1
# the reference's level coefficients (levels 0, 1, 2) before 2.5k, 5k, 7.5k and after, of 100k iterations
LEVEL_COEFFICIENTS = ((0.50, 0.75, 0.90, 1.00), (0.35, 0.20, 0.10, 0.00), (0.15, 0.05, 0.00, 0.00))
LEVEL_MILESTONES = (0.025, 0.05, 0.075)


def level_coefficients(step: int, total_steps: int, levels: int) -> list[float]:
    """The coefficient of each deep-supervision level (level 0 first) at ``step`` of ``total_steps``."""
    phase = sum(step >= fraction * total_steps for fraction in LEVEL_MILESTONES)
    return [LEVEL_COEFFICIENTS[level][phase] if level < len(LEVEL_COEFFICIENTS) else 0.0 for level in range(levels)]


def balanced_weights(valid: Tensor, boundary: Tensor, weights: Sequence[float] = (BOUNDARY_WEIGHT, INTERIOR_WEIGHT)
                     ) -> Tensor:
    """Per-pixel loss weights N x H x W: each of the boundary and valid-interior masks divided by its
    own pixel count in the sample, times its weight; nodata pixels weigh 0."""
    boundary = boundary.to(torch.float32)
    interior = valid.to(torch.float32) * (1 - boundary)
    out = torch.zeros_like(boundary)
    for mask, weight in zip((boundary, interior), weights):
        count = mask.sum(dim=(-2, -1), keepdim=True)
        out = out + weight * mask / count.clamp_min(1.0)
    return out


def displacement_loss(levels: Sequence[Tensor], target: Tensor, weights: Tensor, coefficients: Sequence[float]
                      ) -> Tensor:
    """``sum_l c_l sum_p w(p) |target(p) - pred_l(p)|^2 / sum_p w(p)`` over the batch; predictions
    and target in network units (N x 2 x h x w), weights N x h x w."""
    total = weights.sum().clamp_min(1e-12)
    loss = target.new_zeros(())
    for coefficient, pred in zip(coefficients, levels):
        if coefficient:
            loss = loss + coefficient * (weights * (target - pred).pow(2).sum(1)).sum() / total
    return loss


def segmentation_loss(levels: Sequence[Tensor], target: Tensor, channel_weights: Sequence[float],
                      coefficients: Sequence[float]) -> Tensor:
    """Sigmoid cross-entropy of the segmentation logits against the true map's channels (N x C x h x w),
    each channel weighted, levels summed with their coefficients (spec §4.3), mean over pixels."""
    w = torch.as_tensor(channel_weights, dtype=target.dtype, device=target.device)[None, :, None, None]
    loss = target.new_zeros(())
    for coefficient, logits in zip(coefficients, levels):
        if coefficient:
            ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
            loss = loss + coefficient * (w * ce).mean()
    return loss
