"""Pieces of the expanded log joint (spec §2 eq. 1) shared by the fields and every evaluation path.

The square is expanded as R − ½Z + ½(V − A) + log prior: the patch side contributes the stacked
kernels [x, −x²/2], the parameter side box sums on the torus.  Every path returns
``scale``·log p + ``shift`` with the scale on its kernels and the shift on its constant terms.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def gradient_tracked(*tensors: Tensor) -> bool:
    """Whether autograd will record an operation on any of ``tensors``."""
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def box_sum_torus(field: Tensor, size: int) -> Tensor:
    """Sum of ``field`` (N×K×H×W) over the size×size window centred on each pixel, wrapping."""
    p = size // 2
    padded = F.pad(field, (p, p, p, p), mode="circular") if p else field
    return F.avg_pool2d(padded, size, stride=1) * (size * size)


def pad_torus(field: Tensor, half: int) -> Tensor:
    """``field`` circularly padded by ``half`` on every side: a *valid* w×w correlation then gives H×W outputs."""
    return F.pad(field, (half, half, half, half), mode="circular") if half else field


def patch_kernels(patches: Tensor) -> Tensor:
    """Stacked correlation kernels [x, −x²/2] (B×2C×w×w) so one correlation gives R − Z/2."""
    return torch.cat([patches, -0.5 * patches * patches], dim=1)


def scaled(tensor: Tensor, scale: float) -> Tensor:
    return tensor if scale == 1.0 else tensor * scale


def affine(tensor: Tensor, scale: float, shift: float) -> Tensor:
    return tensor if scale == 1.0 and shift == 0.0 else tensor * scale + shift
