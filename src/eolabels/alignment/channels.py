"""What the scale network sees (spec §5.c): S2 bands scaled to [-1, 1], and map channels built from
the label raster: valid mask, class-boundary pixels (a 4-neighbour class change inside the valid
area) and a one-hot of grouped classes (a one-to-one table of ``config/tables``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from eolabels.tables import load_mapping


def boundary_mask(labels: np.ndarray, nodata: int) -> np.ndarray:
    """Valid pixels with a valid 4-neighbour of another class (H x W bool)."""
    valid = labels != nodata
    out = np.zeros(labels.shape, dtype=bool)
    for a, b in (
        (np.s_[1:, :], np.s_[:-1, :]),
        (np.s_[:, 1:], np.s_[:, :-1]),
    ):
        change = (labels[a] != labels[b]) & valid[a] & valid[b]
        out[a] |= change
        out[b] |= change
    return out


@dataclass(frozen=True)
class MapEncoder:
    """Label raster → map channels: ``valid``, ``boundary`` and one channel per class group.

    ``groups`` is the name of a one-to-one table ``<schema>_to_<groups>`` (None: no class channels).
    """

    schema: str
    nodata: int
    groups: str | None = None

    @cached_property
    def lookup(self) -> np.ndarray | None:
        if self.groups is None:
            return None
        mapping = load_mapping(self.groups)
        table = np.full(256, -1, dtype=np.int64)
        for source, target in mapping.items():
            table[source] = target
        return table

    @cached_property
    def channels(self) -> int:
        if self.groups is None:
            return 2
        return 2 + len({v for v in load_mapping(self.groups).values() if v != self.nodata})

    def __call__(self, labels: np.ndarray) -> np.ndarray:
        """(channels, H, W) float32 in [0, 1]."""
        valid = labels != self.nodata
        planes = [valid, boundary_mask(labels, self.nodata)]
        if self.lookup is not None:
            group = self.lookup[labels]
            planes += [valid & (group == g) for g in range(self.channels - 2)]
        return np.stack(planes).astype(np.float32)


@dataclass(frozen=True)
class BandScaler:
    """Selected bands mapped linearly from their [low, high] (training percentiles) onto [-1, 1], clipped."""

    bands: tuple[str, ...]
    low: tuple[float, ...]
    high: tuple[float, ...]

    @classmethod
    def fit(cls, images: Sequence[np.ndarray], all_bands: Sequence[str], bands: Sequence[str],
            percentiles: tuple[float, float] = (1.0, 99.0)) -> BandScaler:
        picks = select_bands(all_bands, bands, "the training images")
        values = np.concatenate([im[picks].reshape(len(picks), -1) for im in images], axis=1).astype(np.float64)
        low, high = np.percentile(values, percentiles, axis=1)
        high = np.maximum(high, low + 1e-6)
        return cls(tuple(bands), tuple(map(float, low)), tuple(map(float, high)))

    def __call__(self, image: np.ndarray, all_bands: Sequence[str], where: str) -> np.ndarray:
        picks = select_bands(all_bands, self.bands, where)
        low = np.asarray(self.low)[:, None, None]
        high = np.asarray(self.high)[:, None, None]
        scaled = 2.0 * (image[picks].astype(np.float64) - low) / (high - low) - 1.0
        return np.clip(scaled, -1.0, 1.0).astype(np.float32)


def select_bands(all_bands: Sequence[str], bands: Sequence[str], where: str) -> list[int]:
    """Positions of ``bands`` among ``all_bands``; a band the image lacks fails naming ``where``."""
    missing = [b for b in bands if b not in all_bands]
    if missing:
        raise ValueError(f"{where}: no band(s) {missing} (has {list(all_bands)})")
    return [list(all_bands).index(b) for b in bands]
