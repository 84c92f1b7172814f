"""The device convention of every training stage (DESIGN.md): ``auto`` = CUDA when present, else CPU."""

from __future__ import annotations

import torch


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` → CUDA when present, else CPU; any other value (``cpu``, ``cuda:1``) as given."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)
