"""Input checks shared by the CromSS tensor functions: bad labels fail fast with a named cause."""

from __future__ import annotations

import torch
from torch import Tensor


def check_labels(labels: Tensor, num_classes: int) -> None:
    """Raise a ValueError naming the first label id outside 0..C−1 (or a non-integer dtype).

    Out-of-range ids would otherwise be dropped from class-wise statistics or crash one_hot.
    """
    if labels.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
        raise ValueError(f"labels must be an integer tensor, got {labels.dtype}")
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        bad = labels[(labels < 0) | (labels >= num_classes)][0]
        raise ValueError(f"label id {int(bad)} out of range 0..{num_classes - 1}")
