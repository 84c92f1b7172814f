"""Imperfect labels from the hidden truth: structured noise, misregistration, missing areas.

Noisy Dynamic-World-like labels combine three error types seen in the real product:
1. *boundary shifts*: the truth warped by a small smooth displacement (errors hug class borders);
2. *blob errors*: smooth random blobs in which a class is replaced by one confused class, drawn per
   (blob, true class) from a season-dependent confusion table
   (``config/tables/synthetic_dw_noise_<season>.csv``);
3. the blob coverage is calibrated by bisection so the tile's pixel accuracy hits its target.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from eolabels.data.layout import smooth_noise



def displacement_field(
    rng: np.random.Generator, shape: tuple[int, int], amplitude: float, scale: float
) -> np.ndarray:
    """(2, H, W) smooth displacement (dy, dx) in pixels whose largest magnitude equals ``amplitude``.

    Misregistration of map data is smooth (a few pixels, varying over tens of pixels), so the field
    is low-pass noise rescaled to the bound; tests check ``max |d| <= amplitude``.
    """
    if amplitude <= 0:
        return np.zeros((2,) + shape, dtype=np.float32)
    field = np.stack([smooth_noise(rng, shape, scale, octaves=1) for _ in range(2)])
    field += rng.normal(0, 1, size=(2, 1, 1))  # a global shift component, as in real misregistration
    norm = np.sqrt((field**2).sum(0)).max()
    return (field * (amplitude / max(norm, 1e-12))).astype(np.float32)


def warp_labels(labels: np.ndarray, field: np.ndarray, fill: int | None = None) -> np.ndarray:
    """Nearest-neighbour backward warp: ``out[y, x] = labels[y + dy, x + dx]``.

    Samples falling outside the tile take ``fill`` (or the nearest edge pixel when ``fill`` is None).
    """
    h, w = labels.shape
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    sy = np.rint(yy + field[0]).astype(np.int64)
    sx = np.rint(xx + field[1]).astype(np.int64)
    inside = (sy >= 0) & (sy < h) & (sx >= 0) & (sx < w)
    out = labels[np.clip(sy, 0, h - 1), np.clip(sx, 0, w - 1)]
    if fill is not None:
        out = np.where(inside, out, fill).astype(labels.dtype)
    return out


def missing_mask(
    rng: np.random.Generator, shape: tuple[int, int], fraction: float, scale: float
) -> np.ndarray:
    """Boolean mask of smooth blobs covering ``fraction`` of the tile (unlabelled / unmapped areas)."""
    if fraction <= 0:
        return np.zeros(shape, dtype=bool)
    field = smooth_noise(rng, shape, scale, octaves=2)
    return field >= np.quantile(field, 1.0 - fraction)


def _blob_replacement(
    rng: np.random.Generator, labels: np.ndarray, confusion: np.ndarray, blob_ids: np.ndarray
) -> np.ndarray:
    """For every (blob, true class) pair, one wrong class drawn from that class's confusion row."""
    n_classes = confusion.shape[0]
    n_blobs = int(blob_ids.max()) + 1
    replacement = np.empty((n_blobs, n_classes), dtype=np.uint8)
    for c in range(n_classes):
        row = confusion[c].astype(np.float64).copy()
        row[c] = 0.0
        if row.sum() <= 0:
            row = np.ones(n_classes)
            row[c] = 0.0
        replacement[:, c] = rng.choice(n_classes, size=n_blobs, p=row / row.sum())
    return replacement[blob_ids, labels]


def noisy_labels(
    rng: np.random.Generator,
    truth: np.ndarray,
    confusion: np.ndarray,
    target_accuracy: float,
    shift_amplitude: float,
    blob_scale: float,
) -> np.ndarray:
    """Dynamic-World-like noisy labels with pixel accuracy ``target_accuracy`` (±0.5 pt per tile).

    ``confusion[t, n]`` is the relative chance that true class t is mislabelled as n inside a blob
    (the diagonal is ignored).  If boundary shifts alone already fall below the target, they are
    returned as they are (the target is then unreachable for this tile and the data card shows it).
    """
    if not 0.0 < target_accuracy <= 1.0:
        raise ValueError(f"target accuracy must lie in (0, 1], got {target_accuracy}")
    shape = truth.shape
    shift = displacement_field(rng, shape, shift_amplitude, scale=blob_scale)
    shifted = warp_labels(truth, shift)
    blob_field = smooth_noise(rng, shape, blob_scale, octaves=2)
    blob_ids, _ = ndimage.label(blob_field > np.quantile(blob_field, 0.3))
    wrong = _blob_replacement(rng, shifted, confusion, blob_ids)
    order = np.sort(blob_field.ravel())[::-1]
    if (shifted == truth).mean() <= target_accuracy:
        return shifted.astype(np.uint8)
    # Bisection over how many of the highest-blob-field pixels get the wrong class.
    lo, hi = 0, order.size
    best = shifted
    while lo < hi:
        mid = (lo + hi) // 2
        covered = blob_field >= order[mid] if mid < order.size else np.ones(shape, bool)
        candidate = np.where(covered, wrong, shifted)
        if (candidate == truth).mean() > target_accuracy:
            lo = mid + 1
        else:
            hi = mid
            best = candidate
    return best.astype(np.uint8)
