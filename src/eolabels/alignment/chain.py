"""The coarse-to-fine chain (spec §4.1-4.2): one network per scale, each predicting a field at its own
resolution on the map as aligned so far, the fields composed into one full-resolution field.

The networks are fully convolutional (valid convolutions), so inference uses windows larger than the
training input: the smallest valid input whose output covers the tile, capped at ``max_output`` px of
output. Larger tiles are predicted window by window (tiled inference): the tile is padded by the
network's margin (image reflected, map nodata), windows step by their output size minus ``overlap``,
and overlapping outputs are averaged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from eolabels.alignment.network import input_size_for, output_size
from eolabels.alignment.pairs import pad_tile
from eolabels.alignment.trainer import ScaleNetwork
from eolabels.alignment.warp import (
    align_labels,
    compose_fields,
    downsample_image,
    downsample_labels,
    upsample_field,
)


def window_starts(length: int, output: int, stride: int) -> list[int]:
    """Output-window origins covering ``length`` px: every ``stride`` px, the last flush with the end."""
    if length <= output:
        return [0]
    starts = list(range(0, length - output, stride))
    return starts + [length - output]


def predict_field(net: ScaleNetwork, image: np.ndarray, labels: np.ndarray, overlap: int = 0,
                  batch_size: int = 16, max_output: int = 256) -> np.ndarray:
    """The field (2, h, w) in px of ``net``'s grid for a scaled image (C x h x w) and labels (h x w) on it."""
    h, w = labels.shape
    if image.shape[1:] != labels.shape:
        raise ValueError(f"image {image.shape[1:]} and map {labels.shape} are on different grids")
    pools = net.network.pool_count
    r = max(net.input_size, input_size_for(min(max(h, w), max_output), pools))
    o = output_size(r, pools)
    if not 0 <= overlap < o:
        raise ValueError(f"overlap {overlap} must lie in [0, {o}) (the scale-{net.scale} network's output side)")
    m = (r - o) // 2
    padded = pad_tile("", image, labels, m, max(h, w) + 2 * m, net.encoder.nodata)
    padded.labels = np.pad(padded.labels, ((0, max(0, o - h)), (0, max(0, o - w))), constant_values=net.encoder.nodata)
    padded.image = np.pad(padded.image, ((0, 0), (0, max(0, o - h)), (0, max(0, o - w))), mode="edge")
    channels = net.encoder(padded.labels)
    origins = [(y, x) for y in window_starts(h, o, o - overlap) for x in window_starts(w, o, o - overlap)]
    total = np.zeros((2, max(h, o), max(w, o)), dtype=np.float64)
    count = np.zeros((max(h, o), max(w, o)), dtype=np.float64)
    device = next(net.model.parameters()).device
    with torch.no_grad():
        for start in range(0, len(origins), batch_size):
            chunk = origins[start : start + batch_size]
            xi = torch.from_numpy(np.stack([padded.image[:, y : y + r, x : x + r] for y, x in chunk])).float()
            xm = torch.from_numpy(np.stack([channels[:, y : y + r, x : x + r] for y, x in chunk])).float()
            out = net.model(xi.to(device), xm.to(device))["displacement"][0].cpu().numpy()
            for (y, x), field in zip(chunk, out):
                total[:, y : y + o, x : x + o] += field
                count[y : y + o, x : x + o] += 1
    return (total[:, :h, :w] / count[:h, :w] / 0.5 * net.amplitude_px).astype(np.float32)


@dataclass
class ChainResult:
    """The composed field (2, H, W) px, the composed field after each stage (coarse first) and the
    aligned map."""

    field: np.ndarray
    stages: list[np.ndarray]
    aligned: np.ndarray


def pad_to_multiple(array: np.ndarray, factor: int, value: int | None) -> np.ndarray:
    """Pad the last two axes at the bottom/right to multiples of ``factor`` (``value`` or edge)."""
    h, w = array.shape[-2:]
    pads = [(0, 0)] * (array.ndim - 2) + [(0, -h % factor), (0, -w % factor)]
    if value is None:
        return np.pad(array, pads, mode="edge")
    return np.pad(array, pads, constant_values=value)


def align_tile(networks: Sequence[ScaleNetwork], image: np.ndarray, bands: Sequence[str], labels: np.ndarray,
               overlap: int = 0, where: str = "tile") -> ChainResult:
    """Run the chain (networks ordered coarse to fine) on one tile: raw image (all its ``bands``) and
    the misregistered labels on the same grid."""
    if image.shape[1:] != labels.shape:
        raise ValueError(f"{where}: image {image.shape[1:]} and map {labels.shape} are on different grids")
    scales = [n.scale for n in networks]
    if scales != sorted(scales, reverse=True):
        raise ValueError(f"{where}: the chain's scales must run coarse to fine, got {scales}")
    nodata = networks[0].encoder.nodata
    h, w = labels.shape
    coarsest = max(scales)
    image_p = pad_to_multiple(image.astype(np.float32), coarsest, None)
    labels_p = pad_to_multiple(labels, coarsest, nodata)
    field = np.zeros((2, *labels_p.shape), dtype=np.float32)
    stages = []
    for net in networks:
        current = align_labels(labels_p, field, nodata)
        scaled = downsample_image(net.scaler(image_p, bands, where), net.scale)
        step = predict_field(net, scaled, downsample_labels(current, net.scale), overlap)
        field = compose_fields(upsample_field(step, net.scale), field)
        stages.append(field[:, :h, :w].copy())
    field = field[:, :h, :w]
    return ChainResult(field, stages, align_labels(labels, field, nodata))
