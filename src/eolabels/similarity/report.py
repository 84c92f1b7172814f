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


def _stretch(band: np.ndarray) -> np.ndarray:
    """2-98 % percentile stretch to [0, 1]."""
    band = band.astype(np.float64)
    low, high = np.percentile(band, [2, 98])
    return np.clip((band - low) / max(high - low, 1e-9), 0, 1)


def image_preview(image: np.ndarray, bands: Sequence[str]) -> tuple[np.ndarray, str]:
    """H x W x 3 preview of a bands x H x W tile and what it shows: true colour (B4/B3/B2) for S2,
    the usual false colour (VV, VH, VV - VH in dB) for S1, else the first band in grey."""
    bands = list(bands)
    if {"B4", "B3", "B2"} <= set(bands):
        channels = [image[bands.index(b)] for b in ("B4", "B3", "B2")]
        return np.stack([_stretch(c) for c in channels], axis=-1), "B4/B3/B2"
    if {"VV", "VH"} <= set(bands):
        vv, vh = image[bands.index("VV")].astype(np.float64), image[bands.index("VH")].astype(np.float64)
        return np.stack([_stretch(vv), _stretch(vh), _stretch(vv - vh)], axis=-1), "VV/VH/VV-VH"
    grey = _stretch(image[0])
    return np.stack([grey] * 3, axis=-1), bands[0]
