"""Backward warping of label rasters and the algebra of displacement fields (spec §4.2).

Sign convention: a map misregistered by the field ``D`` is ``M_mis(q) = M_true(q + D(q))`` (the
synthetic world's ``displacement`` layer is this ``D``); the network predicts ``D``, and alignment is
``M_al(p) = M_mis(p - D^(p))``, nearest neighbour, nodata outside. Fields are (2, H, W) arrays of
(dy, dx) in pixels of their own grid.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from eolabels.data.noise import warp_labels


def backward_warp(labels: np.ndarray, field: np.ndarray, nodata: int) -> np.ndarray:
    """``out[p] = labels[round(p + field(p))]``, ``nodata`` where that falls outside the raster."""
    if labels.shape != field.shape[1:]:
        raise ValueError(f"labels {labels.shape} and field {field.shape[1:]} are on different grids")
    return warp_labels(labels, field, fill=nodata)


def align_labels(labels: np.ndarray, predicted: np.ndarray, nodata: int) -> np.ndarray:
    """``M_al(p) = M_mis(p - D^(p))``: undo a predicted misregistration ``D^`` (spec §4.2)."""
    return backward_warp(labels, -predicted, nodata)


def sample_field(field: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``field`` bilinearly interpolated at fractional positions (rows, cols), border values outside;
    (2, *rows.shape)."""
    h, w = field.shape[1:]
    r = np.clip(rows, 0, h - 1)
    c = np.clip(cols, 0, w - 1)
    r0, c0 = np.floor(r).astype(np.int64), np.floor(c).astype(np.int64)
    r1, c1 = np.minimum(r0 + 1, h - 1), np.minimum(c0 + 1, w - 1)
    fr, fc = r - r0, c - c0
    return (
        field[:, r0, c0] * (1 - fr) * (1 - fc) + field[:, r0, c1] * (1 - fr) * fc
        + field[:, r1, c0] * fr * (1 - fc) + field[:, r1, c1] * fr * fc
    )


def compose_fields(new: np.ndarray, old: np.ndarray) -> np.ndarray:
    """The one field equal to aligning by ``old`` and then by ``new``:
    ``D(p) = new(p) + old(p - new(p))`` (since ``M2(p) = M1(p - new(p))``, ``M1(q) = M0(q - old(q))``)."""
    h, w = new.shape[1:]
    yy, xx = np.mgrid[:h, :w].astype(np.float64)
    return (new + sample_field(old, yy - new[0], xx - new[1])).astype(np.float32)


def residual_field(true: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Misregistration left in ``align_labels(M_mis, predicted)``: ``R(p) = D(p - D^(p)) - D^(p)``, since
    ``M_al(p) = M_true(p - D^(p) + D(p - D^(p)))``."""
    h, w = true.shape[1:]
    yy, xx = np.mgrid[:h, :w].astype(np.float64)
    return (sample_field(true, yy - predicted[0], xx - predicted[1]) - predicted).astype(np.float32)


def upsample_field(field: np.ndarray, factor: int) -> np.ndarray:
    """A field of a grid ``factor`` times coarser brought onto the fine grid: bilinear between pixel
    centres, values times ``factor`` (a coarse pixel is ``factor`` fine pixels)."""
    if factor == 1:
        return field.astype(np.float32)
    up = F.interpolate(torch.from_numpy(field[None].astype(np.float32)), scale_factor=factor, mode="bilinear",
                       align_corners=False)
    return (up[0].numpy() * factor).astype(np.float32)


def downsample_field(field: np.ndarray, factor: int) -> np.ndarray:
    """Block mean of a field onto a grid ``factor`` times coarser, values divided by ``factor``."""
    if factor == 1:
        return field.astype(np.float32)
    pooled = F.avg_pool2d(torch.from_numpy(field[None].astype(np.float32)), factor)
    return (pooled[0].numpy() / factor).astype(np.float32)


def downsample_image(image: np.ndarray, factor: int) -> np.ndarray:
    """Block mean of a (bands, H, W) image (an anti-aliased downsampling); H, W multiples of ``factor``."""
    if factor == 1:
        return image.astype(np.float32)
    return F.avg_pool2d(torch.from_numpy(image[None].astype(np.float32)), factor)[0].numpy()


def downsample_labels(labels: np.ndarray, factor: int) -> np.ndarray:
    """The most frequent value of each ``factor`` x ``factor`` block (nodata counts as a value; ties to
    the lowest id): a labels raster centred on the same blocks as :func:`downsample_image`."""
    if factor == 1:
        return labels.copy()
    h, w = labels.shape
    blocks = labels.reshape(h // factor, factor, w // factor, factor).transpose(0, 2, 1, 3).reshape(
        h // factor, w // factor, -1
    )
    values = np.unique(labels)
    counts = np.stack([(blocks == v).sum(-1) for v in values])
    out = values[counts.argmax(0)]
    return out.astype(labels.dtype)
