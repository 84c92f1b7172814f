"""Writing the similarity stages' tables and figures: CSV + Markdown twins, atomically."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from eolabels.atomic import atomic_path

SYNTHETIC_NOTE = (
    "Synthetic world: these numbers describe eolabels' embedded synthetic data, not the papers' data."
)


def write_table(
    table: pd.DataFrame,
    csv_path: str | os.PathLike[str],
    markdown_path: str | os.PathLike[str],
    title: str,
    notes: Sequence[str] = (),
) -> None:
    """The CSV and its Markdown twin (title, notes as quotes, the table)."""
    with atomic_path(csv_path) as tmp:
        table.to_csv(tmp, index=False)
    lines = [f"# {title}", ""]
    lines += [f"> {note}\n" for note in notes]
    lines += [table.to_markdown(index=False, floatfmt=".4f"), ""]
    with atomic_path(markdown_path) as tmp:
        tmp.write_text("\n".join(lines))


def save_figure(fig: object, path: str | os.PathLike[str], dpi: int = 110) -> None:
    """Save a matplotlib figure atomically (the suffix picks the format) and close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format=path.suffix.lstrip("."))  # type: ignore[attr-defined]
    plt.close(fig)  # type: ignore[arg-type]


def rgb_preview(s2: np.ndarray, bands: Sequence[str], names: Sequence[str] = ("B4", "B3", "B2")) -> np.ndarray:
    """H x W x 3 true-colour image of a 13-band tile, 2-98 % stretch per band."""
    channels = [s2[list(bands).index(b)].astype(np.float64) for b in names]
    out = []
    for c in channels:
        low, high = np.percentile(c, [2, 98])
        out.append(np.clip((c - low) / max(high - low, 1e-9), 0, 1))
    return np.stack(out, axis=-1)
