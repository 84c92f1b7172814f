"""Training pairs of one scale (spec §5.c): (image, map warped by a fresh random field) -> field.

A pair is cut from one tile brought to the scale's resolution: an input window of side R, a fresh
random smooth field over it (max ``amplitude`` px at that scale, §4.4), the map backward-warped by the
field (``M_in(q) = M(q + phi(q))``, so the target of alignment is ``phi``), the field's central output
window as target, and loss weights from the warped map. Random 90° rotations and flips transform the
vectors with the rasters. Windows whose output holds no map boundary are drawn again (the reference
keeps patches with a vertex in the inner region).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from eolabels.alignment.channels import MapEncoder
from eolabels.alignment.fields import FieldRequestError, random_smooth_field
from eolabels.alignment.loss import balanced_weights
from eolabels.alignment.warp import backward_warp

MAX_REDRAWS = 20


@dataclass
class ScaleTile:
    """One tile at a scale's resolution, padded by the network's margin: scaled image (C x h x w) and
    labels (h x w, nodata in the padding)."""

    name: str
    image: np.ndarray
    labels: np.ndarray


def pad_tile(name: str, image: np.ndarray, labels: np.ndarray, margin: int, min_side: int, nodata: int) -> ScaleTile:
    """Pad by ``margin`` on every side (image reflected, map nodata), and further up to ``min_side``."""
    h, w = labels.shape
    extra_h, extra_w = max(0, min_side - h - 2 * margin), max(0, min_side - w - 2 * margin)
    pads = ((margin, margin + extra_h), (margin, margin + extra_w))
    mode = "reflect" if min(h, w) > max(margin + extra_h, margin + extra_w) else "edge"
    return ScaleTile(
        name,
        np.pad(image, ((0, 0), *pads), mode=mode),
        np.pad(labels, pads, constant_values=nodata),
    )


def rotate_field(field: np.ndarray, k: int) -> np.ndarray:
    """A field under ``np.rot90(·, k, axes=(1, 2))`` of the rasters: the arrays rotated and every
    vector (dy, dx) turned with them, one quarter turn at a time (dy, dx) -> (-dx, dy)."""
    out = np.rot90(field, k, axes=(1, 2))
    for _ in range(k % 4):
        out = np.stack([-out[1], out[0]])
    return out


def flip_field(field: np.ndarray) -> np.ndarray:
    """A field under a left-right flip of the rasters: arrays flipped, dx negated."""
    out = field[:, :, ::-1]
    return np.stack([out[0], -out[1]])


@dataclass
class PairSampler:
    """Draws batches of training pairs of one scale from its tiles."""

    tiles: Sequence[ScaleTile]
    encoder: MapEncoder
    input_size: int
    output_size: int
    amplitude: float
    correlation_length: float
    augment: bool = True

    def __post_init__(self) -> None:
        for tile in self.tiles:
            if min(tile.labels.shape) < self.input_size:
                raise FieldRequestError(
                    f"tile {tile.name}: {tile.labels.shape[0]}x{tile.labels.shape[1]} px at this scale (padded) is "
                    f"smaller than the network's {self.input_size}-px input"
                )
        if not self.tiles:
            raise ValueError("no tiles to draw training pairs from")

    def pair(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """One pair: ``image``, ``map`` (channels), ``target`` (px), ``weights``, ``truth_map`` (channels
        of the unwarped map over the output window)."""
        r, o = self.input_size, self.output_size
        m = (r - o) // 2
        for _ in range(MAX_REDRAWS):
            tile = self.tiles[int(rng.integers(len(self.tiles)))]
            h, w = tile.labels.shape
            top, left = int(rng.integers(h - r + 1)), int(rng.integers(w - r + 1))
            labels = tile.labels[top : top + r, left : left + r]
            if (labels[m : m + o, m : m + o] != self.encoder.nodata).any():
                break
        field = random_smooth_field(rng, (r, r), self.amplitude, self.correlation_length)
        warped = backward_warp(labels, field, self.encoder.nodata)
        channels = self.encoder(warped)
        image = tile.image[:, top : top + r, left : left + r]
        truth = self.encoder(labels)[:2, m : m + o, m : m + o]
        target = field[:, m : m + o, m : m + o]
        if self.augment:
            k = int(rng.integers(4))
            image, channels, truth = (np.rot90(a, k, axes=(1, 2)) for a in (image, channels, truth))
            target = rotate_field(target, k)
            if rng.random() < 0.5:
                image, channels, truth = (a[:, :, ::-1] for a in (image, channels, truth))
                target = flip_field(target)
        return {"image": image, "map": channels, "target": target, "truth_map": truth}

    def batch(self, rng: np.random.Generator, size: int) -> dict[str, Tensor]:
        """``size`` pairs stacked as float32 tensors, with ``weights`` from the warped map's output window."""
        pairs = [self.pair(rng) for _ in range(size)]
        out = {k: torch.from_numpy(np.ascontiguousarray(np.stack([p[k] for p in pairs]))).float() for k in pairs[0]}
        m = (self.input_size - self.output_size) // 2
        window = out["map"][:, :2, m : m + self.output_size, m : m + self.output_size]
        out["weights"] = balanced_weights(window[:, 0] > 0.5, window[:, 1] > 0.5)
        return out
