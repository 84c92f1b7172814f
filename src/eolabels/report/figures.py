"""Saving figures: one atomic writer for every stage, so a killed job never leaves a truncated image."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from eolabels.atomic import atomic_path


def save_figure(fig: Any, path: str | os.PathLike[str], dpi: int = 100) -> Path:
    """Write ``fig`` atomically (the suffix picks the format) and release it; returns the path.

    Works for pyplot figures and for bare ``matplotlib.figure.Figure`` objects alike.
    """
    import matplotlib.pyplot as plt

    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format=path.suffix.lstrip(".") or "png")
    plt.close(fig)
    return path
