"""Helpers of the similarity stages' outputs: the ``data`` value of tile sets and true-colour previews.

Tables go through ``eolabels.report.tables.write_table`` like every stage's."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from eolabels.report.tables import combined_source
from eolabels.similarity.tiles import TileSet

TOY_SOURCE = "synthetic:toy"
"""``data`` of the toy's tables and figures (generated points on a circle; eolabels.report.tables)."""


def tile_sets_source(*tile_sets: TileSet) -> str:
    """The ``data`` value (``eolabels.report.tables.combined_source``) of results computed from
    these tile sets: their datasets' meta ``source``, so real data are never called synthetic."""
    return combined_source({t.index.meta.name: t.index.meta.source for t in tile_sets})


def rgb_preview(s2: np.ndarray, bands: Sequence[str], names: Sequence[str] = ("B4", "B3", "B2")) -> np.ndarray:
    """H x W x 3 true-colour image of a 13-band tile, 2-98 % stretch per band."""
    channels = [s2[list(bands).index(b)].astype(np.float64) for b in names]
    out = []
    for c in channels:
        low, high = np.percentile(c, [2, 98])
        out.append(np.clip((c - low) / max(high - low, 1e-9), 0, 1))
    return np.stack(out, axis=-1)
