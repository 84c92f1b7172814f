"""The device convention of every training stage (DESIGN.md): ``auto`` = CUDA when present, else CPU."""

from __future__ import annotations

import torch


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` → CUDA when present, else CPU; any other value (``cpu``, ``cuda:1``) as given.

    A CUDA device this machine does not have fails here, naming the ``device`` setting, rather than
    deep inside the first tensor move. It is checked where a job runs, not when the workflow is
    planned: on a cluster the planning host often has no GPU while the compute nodes do.
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda":
        available = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if (resolved.index or 0) >= available:
            raise RuntimeError(
                f"device {device!r} (config key `device`): this machine has "
                f"{available or 'no'} CUDA device{'s' if available != 1 else ''}; "
                "use device: auto (CUDA when present) or cpu"
            )
    return resolved
