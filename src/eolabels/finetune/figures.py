"""Figures of the fine-tuning analyses: segmentation maps side by side (CromSS Figs. 6–7), per-layer KL
(Figs. 8 c,d and 12) and the cumulative explained variance per encoder stage (Fig. 13).

Free of torch, so a plotting job starts in a second: the numbers come from
:mod:`eolabels.finetune.analysis`. Each function returns a bare ``matplotlib.figure.Figure`` (Agg
canvas, no pyplot state); write it with :func:`eolabels.report.figures.save_figure`, which is atomic.
Every title carries :func:`eolabels.report.tables.source_tag` of the ``data`` it was computed from, so
a figure of the synthetic world says so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from eolabels.report.tables import source_tag
from eolabels.tables import ClassSchema

UNLABELLED_RGB = (1.0, 1.0, 1.0)  # pixels without a class (255) are drawn white


def label_colours(labels: np.ndarray, schema: ClassSchema) -> np.ndarray:
    """(H, W, 3) colours of a map of class ids from the schema's palette; ids outside it (255) white."""
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"a label map must be 2-D (H, W), got shape {labels.shape}")
    lut = np.tile(np.asarray(UNLABELLED_RGB), (256, 1))
    lut[list(schema.ids)] = schema.rgb()
    return lut[np.clip(labels.astype(np.int64), 0, 255)]


def rgb_composite(image: np.ndarray, channels: Sequence[int], low: float = 2.0, high: float = 98.0) -> np.ndarray:
    """(H, W, 3) composite of three channels of a (C, H, W) image, each stretched to its
    ``low``–``high`` percentile range (e.g. S2 B4, B3, B2)."""
    image = np.asarray(image, dtype=np.float64)
    if image.ndim != 3 or len(channels) != 3:
        raise ValueError(f"need a (C, H, W) image and 3 channels, got shape {image.shape} and {list(channels)}")
    rgb = np.moveaxis(image[list(channels)], 0, -1)
    lo = np.percentile(rgb, low, axis=(0, 1), keepdims=True)
    hi = np.percentile(rgb, high, axis=(0, 1), keepdims=True)
    return np.clip((rgb - lo) / np.maximum(hi - lo, 1e-12), 0.0, 1.0)


def _title(fig: Figure, title: str, data: str) -> None:
    fig.suptitle(f"{title} — {source_tag(data)}", fontsize=10)


def plot_segmentation_maps(images: Sequence[np.ndarray], truths: Sequence[np.ndarray],
                           predictions: Mapping[str, Sequence[np.ndarray]], schema: ClassSchema, data: str,
                           title: str = "Segmentation maps", sample_names: Sequence[str] | None = None) -> Figure:
    """One row per sample: the image (H, W, 3 in [0, 1], see :func:`rgb_composite`), the ground truth
    and each named encoder's prediction (class ids), with the schema's class legend (paper Figs. 6–7).

    ``predictions`` maps an encoder source (``random``, ``S2 single-modal``, ``CromSS``, …) to one map
    per sample.
    """
    n = len(images)
    if n == 0 or len(truths) != n:
        raise ValueError(f"need ≥ 1 sample and one truth per image, got {n} images and {len(truths)} truths")
    for source, maps in predictions.items():
        if len(maps) != n:
            raise ValueError(f"predictions of {source!r}: {len(maps)} maps for {n} samples")
    names = list(sample_names) if sample_names is not None else [f"sample {i}" for i in range(n)]
    columns = ["image", "ground truth", *predictions]
    fig = Figure(figsize=(2.3 * len(columns), 2.3 * n + 1.0), layout="constrained")
    axes = fig.subplots(n, len(columns), squeeze=False)
    for row in range(n):
        image = np.asarray(images[row], dtype=np.float64)
        if image.ndim != 3 or image.shape[-1] != 3:
            raise ValueError(f"image {row} must be (H, W, 3), got shape {image.shape}")
        panels = [np.clip(image, 0, 1), label_colours(truths[row], schema),
                  *[label_colours(maps[row], schema) for maps in predictions.values()]]
        for ax, column, panel in zip(axes[row], columns, panels):
            ax.imshow(panel, interpolation="nearest")
            ax.set_title(f"{names[row]}: {column}" if column == "image" else column, fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
    handles = [Patch(color=colour, label=name) for name, colour in zip(schema.names, schema.colors)]
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 7), fontsize=7, frameon=False)
    _title(fig, title, data)
    return fig


def _union_order(mappings: Sequence[Mapping[str, object]]) -> list[str]:
    seen: dict[str, None] = {}
    for m in mappings:
        seen.update(dict.fromkeys(m))
    return list(seen)


def plot_layer_kl(per_source: Mapping[str, Mapping[str, Mapping[str, float]]], data: str, title: str,
                  ylabel: str = "KL divergence (nats)", log_y: bool = False) -> Figure:
    """One panel per layer group (encoder, decoder), one line per encoder source: the per-layer KL of
    :func:`~eolabels.finetune.analysis.weight_kl` (Fig. 12) or of the BN statistics (Fig. 8 c,d).

    ``per_source`` is {source: {group: {layer: KL}}}, i.e. :func:`~eolabels.finetune.analysis.group_layers`
    of each source's result. Layers are placed in order along x; a group without layers (an FPN decoder
    has no BatchNorm) gets an empty panel saying so.
    """
    if not per_source:
        raise ValueError("no encoder source to plot")
    groups = _union_order(list(per_source.values()))
    fig = Figure(figsize=(7 * len(groups), 4.2), layout="constrained")
    axes = fig.subplots(1, len(groups), squeeze=False)[0]
    for ax, group in zip(axes, groups):
        layers = _union_order([s.get(group, {}) for s in per_source.values()])
        if not layers:
            ax.text(0.5, 0.5, f"no layers in the {group}", ha="center", va="center", transform=ax.transAxes)
        position = {layer: i for i, layer in enumerate(layers)}
        for source, by_group in per_source.items():
            values = by_group.get(group, {})
            if values:
                ax.plot([position[k] for k in values], list(values.values()), marker=".", lw=1, label=source)
        ax.set_title(group, fontsize=9)
        ax.set_xlabel("layer")
        ax.set_ylabel(ylabel)
        if layers:
            step = max(1, len(layers) // 40)  # at most ~40 tick labels stay legible
            ax.set_xticks(range(0, len(layers), step), [layers[i] for i in range(0, len(layers), step)],
                          rotation=90, fontsize=5)
            if log_y:
                ax.set_yscale("log")
            ax.legend(fontsize=7)
    _title(fig, title, data)
    return fig


def plot_explained_variance(per_source: Mapping[str, Mapping[str, np.ndarray]], data: str,
                            title: str = "Cumulative explained variance of encoder features (PCA)") -> Figure:
    """One panel per encoder stage, one line per encoder source: the cumulative explained-variance
    ratio against the number of principal components (paper Fig. 13).

    ``per_source`` is {source: {stage: curve}}, i.e. :func:`~eolabels.finetune.analysis.stage_explained_variance`
    of each source.
    """
    if not per_source:
        raise ValueError("no encoder source to plot")
    stages = _union_order(list(per_source.values()))
    fig = Figure(figsize=(3.2 * len(stages), 3.4), layout="constrained")
    axes = fig.subplots(1, len(stages), squeeze=False)[0]
    for ax, stage in zip(axes, stages):
        for source, curves in per_source.items():
            if stage in curves:
                curve = np.asarray(curves[stage], dtype=np.float64)
                ax.plot(np.arange(1, curve.size + 1), curve, lw=1.2, label=source)
        ax.set_title(stage, fontsize=9)
        ax.set_xlabel("principal components")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("cumulative explained variance")
    axes[0].legend(fontsize=7)
    _title(fig, title, data)
    return fig
