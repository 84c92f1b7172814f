"""Epoch schedules of CromSS: the sample-selection ramp λ(e), the selection ratio r(e) (spec §3.6)
and the cosine learning rate of fine-tuning (spec §7).

Epochs are 0-based, as Lightning's ``current_epoch`` in the reference, so the weights of one epoch
are constant within it.
"""

from __future__ import annotations

import math
from typing import Literal

RampKind = Literal["exp", "linear", "none"]
RAMP_KINDS: tuple[str, ...] = ("exp", "linear", "none")


def sigmoid_rampup(epoch: float, rampup_epochs: float) -> float:
    """Laine & Aila's ramp exp(−5(1 − t)²), t = clip(e, 0, N_r)/N_r: λ(0) = e⁻⁵, λ(N_r) = 1 (§3.6).

    A zero-length ramp is already complete (λ = 1), as in the reference ``sigmoid_rampup``.
    """
    if rampup_epochs == 0:
        return 1.0
    t = min(max(float(epoch), 0.0), float(rampup_epochs)) / rampup_epochs
    return float(math.exp(-5.0 * (1.0 - t) ** 2))


def linear_rampup(epoch: float, rampup_epochs: float) -> float:
    """λ(e) = clip(e/N_r, 0, 1) (§3.6, ``--sample_selection_rmup_func linear``)."""
    if rampup_epochs == 0:
        return 1.0
    return min(max(float(epoch) / rampup_epochs, 0.0), 1.0)


def selection_ramp(kind: RampKind, epoch: float, rampup_epochs: float) -> float:
    """The sample-selection strength λ(e) ∈ [0, 1] used by Eq. 12 and by r(e).

    ``none`` means *no warm-up*: λ ≡ 1, i.e. full-strength selection from epoch 0 (r(e) = r*,
    entity weights = enhanced entity confidence).  The reference's ``none`` raises a TypeError
    (its lambda takes one argument), so this is our definition, not a reproduction.
    """
    if kind == "exp":
        return sigmoid_rampup(epoch, rampup_epochs)
    if kind == "linear":
        return linear_rampup(epoch, rampup_epochs)
    if kind == "none":
        return 1.0
    raise ValueError(f"unknown selection ramp {kind!r}; expected one of {RAMP_KINDS}")


def selection_ratio(
    epoch: float, final_ratio: float = 0.5, rampdown_epochs: float = 80, kind: RampKind = "exp"
) -> float:
    """Share r(e) of each class's pixels that keep full weight in label thresholding (Eq. 11).

    r(e) = 1 − λ(e)·(1 − r*) while e ≤ N_r, then r* (§3.6): r ramps down from ≈1 to r*.
    """
    if not 0.0 <= final_ratio <= 1.0:
        raise ValueError(f"final selection ratio must lie in [0, 1], got {final_ratio}")
    if epoch > rampdown_epochs:
        return float(final_ratio)
    return 1.0 - selection_ramp(kind, epoch, rampdown_epochs) * (1.0 - final_ratio)


def cosine_lr(epoch: int, base_lr: float = 5e-4, final_lr: float = 1e-5, period: int = 40) -> float:
    """Fine-tuning learning rate (§7): final + (base − final)(1 + cos(πe/T))/2 for e < T, then final.

    Stepped once per epoch, as the reference's LambdaLR.
    """
    if epoch >= period:
        return float(final_lr)
    return final_lr + (base_lr - final_lr) * (1.0 + math.cos(math.pi * epoch / period)) / 2.0
