"""Figures of the alignment stage: one tile before and after (image, maps, true and predicted fields,
residual histogram), and the threshold-accuracy curves of every round (spec §4.5)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from eolabels.alignment.channels import select_bands  # noqa: E402
from eolabels.alignment.evaluate import THRESHOLDS, end_point_error  # noqa: E402
from eolabels.alignment.tiles import AlignTile  # noqa: E402
from eolabels.report.figures import save_figure  # noqa: E402
from eolabels.tables import load_schema  # noqa: E402


def rgb_preview(image: np.ndarray, bands: Sequence[str]) -> np.ndarray:
    """True-colour (B4, B3, B2) preview stretched to its 2-98 percentiles; the first band if absent."""
    try:
        picks = select_bands(bands, ("B4", "B3", "B2"), "preview")
    except ValueError:
        picks = [0, 0, 0]
    rgb = image[picks].astype(np.float64).transpose(1, 2, 0)
    low, high = np.percentile(rgb, (2, 98))
    return np.clip((rgb - low) / max(high - low, 1e-9), 0, 1)


def _labels_rgb(labels: np.ndarray, schema: str, nodata: int) -> np.ndarray:
    classes = load_schema(schema)
    lut = np.zeros((256, 3))
    lut[list(classes.ids)] = classes.rgb()
    out = lut[labels]
    out[labels == nodata] = 0.0
    return out


def _quiver(ax: plt.Axes, field: np.ndarray, title: str, step: int) -> None:
    h, w = field.shape[1:]
    yy, xx = np.mgrid[step // 2 : h : step, step // 2 : w : step]
    ax.quiver(xx, yy, field[1, yy, xx], -field[0, yy, xx], np.hypot(field[0, yy, xx], field[1, yy, xx]),
              angles="xy", scale_units="xy", scale=0.25, cmap="viridis")
    ax.set_xlim(0, w)
    ax.set_ylim(h, 0)
    ax.set_aspect("equal")
    ax.set_title(title, fontsize=8)


def alignment_figure(tile: AlignTile, bands: Sequence[str], aligned: np.ndarray, predicted: np.ndarray,
                     schema: str, nodata: int, path: str | os.PathLike[str], title: str) -> None:
    """Image, map before and after, true field (when known), predicted field, residual histogram."""
    panels = 6 if tile.field is not None else 4
    fig, axes = plt.subplots(1, panels, figsize=(3 * panels, 3.4))
    axes[0].imshow(rgb_preview(tile.image, bands))
    axes[0].set_title(f"image {tile.name}", fontsize=8)
    reference = tile.truth if tile.truth is not None else None
    for ax, labels, name in ((axes[1], tile.labels, "map as given"), (axes[2], aligned, "map aligned")):
        ax.imshow(_labels_rgb(labels, schema, nodata), interpolation="nearest")
        if reference is not None:
            ax.contour(reference, levels=np.unique(reference)[:-1] + 0.5, colors="white", linewidths=0.4)
        ax.set_title(name + (" (white: true boundaries)" if reference is not None else ""), fontsize=8)
    step = max(2, min(tile.labels.shape) // 16)
    if tile.field is not None:
        _quiver(axes[3], tile.field, "true field D (px)", step)
        _quiver(axes[4], predicted, "predicted field D^ (px)", step)
        errors = end_point_error(predicted, tile.field).ravel()
        before = np.hypot(*tile.field.reshape(2, -1))
        bins = np.linspace(0, max(before.max(), errors.max(), 1e-3), 30)
        axes[5].hist(before, bins, alpha=0.5, label="|D| (no correction)")
        axes[5].hist(errors, bins, alpha=0.5, label="|D^ - D|")
        axes[5].set_xlabel("px", fontsize=8)
        axes[5].legend(fontsize=7)
        axes[5].set_title("residual histogram", fontsize=8)
    else:
        _quiver(axes[3], predicted, "predicted field D^ (px)", step)
    for ax in axes[: panels - 1] if tile.field is not None else axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


def threshold_curves(curves: dict[str, Sequence[float]], path: str | os.PathLike[str], title: str) -> None:
    """Fraction of boundary pixels within t px (t = 0..8) per round (``curves``: label -> values)."""
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for label, values in curves.items():
        ax.plot(THRESHOLDS, values, marker="o", ms=3, label=label, linestyle="--" if label.startswith("D0") else "-")
    ax.set_xlabel("threshold t (px)")
    ax.set_ylabel("fraction of boundary pixels within t")
    ax.set_ylim(0, 1.02)
    _finish_line_plot(fig, ax, title, path)


def _patch_rgb(image: np.ndarray, map_channels: np.ndarray, bands: Sequence[str]) -> np.ndarray:
    """A patch as the network sees it: true colour, the map's boundary pixels (channel 1) in red."""
    rgb = rgb_preview(image, bands)
    rgb[map_channels[1] > 0.5] = (1.0, 0.1, 0.1)
    return rgb


def neighbours_figure(image: np.ndarray, map_channels: np.ndarray, bands: Sequence[str], similarity: np.ndarray,
                      perceptual: np.ndarray, queries: Sequence[int], by_network: Sequence[Sequence[int]],
                      by_perceptual: Sequence[Sequence[int]], path: str | os.PathLike[str], title: str) -> None:
    """One row per query patch: the patch, its nearest neighbours under the network's similarity k, under
    the perceptual distance, and the histogram of its similarities to every other patch."""
    k = len(by_network[0])
    cols = 2 + 2 * k
    fig, axes = plt.subplots(len(queries), cols, figsize=(1.6 * cols, 1.8 * len(queries)), squeeze=False)
    for row, q in enumerate(queries):
        cells = [(q, f"query {q}")]
        cells += [(j, f"k={similarity[q, j]:.2f}") for j in by_network[row]]
        cells += [(j, f"d={perceptual[q, j]:.2g}") for j in by_perceptual[row]]
        for ax, (j, label) in zip(axes[row], cells):
            ax.imshow(_patch_rgb(image[j], map_channels[j], bands), interpolation="nearest")
            ax.set_title(f"#{j} {label}" if j != q else label, fontsize=7)
            ax.set_xticks([])
            ax.set_yticks([])
        others = np.delete(similarity[q], q)
        axes[row, -1].hist(others, bins=np.linspace(-1, 1, 21))
        axes[row, -1].set_title(f"k(query {q}, others)", fontsize=7)
        axes[row, -1].tick_params(labelsize=6)
    axes[0, 1].annotate("network similarity k →", (0, 1.35), xycoords="axes fraction", fontsize=8)
    axes[0, 1 + k].annotate("perceptual distance d →", (0, 1.35), xycoords="axes fraction", fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    save_figure(fig, path, dpi=100)


def similarity_histograms(rounds: dict[str, np.ndarray], query: int, path: str | os.PathLike[str], title: str) -> None:
    """Histogram of one patch's similarities to every other patch, one step line per round
    (``rounds``: label -> that round's ``n x n`` similarity matrix)."""
    fig, ax = plt.subplots(figsize=(5, 3.6))
    bins = np.linspace(-1, 1, 41)
    for label, similarity in rounds.items():
        ax.hist(np.delete(similarity[query], query), bins=bins, histtype="step", linewidth=1.5, label=label)
    ax.set_xlabel(f"network similarity k(patch {query}, other patch)")
    ax.set_ylabel("patches")
    _finish_line_plot(fig, ax, title, path)


def _finish_line_plot(fig: plt.Figure, ax: plt.Axes, title: str, path: str | os.PathLike[str]) -> None:
    """Grid, legend and title of the rounds' line plots, then the figure written."""
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
