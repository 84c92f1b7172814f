"""Figures: epitome training (means as RGB, posterior usage, promotion resets, losses) and LSR maps.

Figures are built as bare ``matplotlib.figure.Figure`` objects (Agg canvas on ``savefig``), so no
pyplot state or GUI backend is touched.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from torch import Tensor

from eolabels.epitome.data import LabelledTile
from eolabels.epitome.model import GaussianEpitome, log_joint, posterior
from eolabels.epitome.train import TrainHistory
from eolabels.tables import ClassSchema


def epitome_rgb(mean: Tensor, channels: Sequence[int] = (0, 1, 2)) -> np.ndarray:
    """L×H×W×3 image of the epitome means, each layer stretched to its 2–98 % range."""
    rgb = mean[:, list(channels)].detach().cpu().permute(0, 2, 3, 1).numpy().astype(np.float64)
    low = np.percentile(rgb, 2, axis=(1, 2, 3), keepdims=True)
    high = np.percentile(rgb, 98, axis=(1, 2, 3), keepdims=True)
    return np.clip((rgb - low) / np.maximum(high - low, 1e-12), 0, 1)


def plot_epitome_means(epitome: GaussianEpitome, channels: Sequence[int] = (0, 1, 2)) -> Figure:
    """One panel per layer showing μ as RGB (spec §2)."""
    rgb = epitome_rgb(epitome.mean, channels)
    fig = Figure(figsize=(4 * len(rgb), 4), layout="constrained")
    axes = fig.subplots(1, len(rgb), squeeze=False)
    for layer, (ax, image) in enumerate(zip(axes[0], rgb)):
        ax.imshow(image, interpolation="nearest")
        ax.set_title(f"epitome layer {layer}: means")
        ax.axis("off")
    return fig


@torch.no_grad()
def posterior_usage(epitome: GaussianEpitome, patches: Tensor, temperature: float = 1.0) -> Tensor:
    """Σ_b q(s | x_b) over a batch, L×H×W: which positions explain the data (spec §3.1, §4)."""
    energy = log_joint(epitome.fields(patches.shape[-1]), patches)
    return posterior(energy, temperature).sum(1)


def plot_posterior_usage(usage: Tensor) -> Figure:
    """Posterior usage per layer on a log scale; dark areas are positions no patch maps to."""
    values = np.log10(usage.detach().cpu().numpy() + 1e-12)
    fig = Figure(figsize=(4 * len(values), 4), layout="constrained")
    axes = fig.subplots(1, len(values), squeeze=False)
    for layer, (ax, image) in enumerate(zip(axes[0], values)):
        shown = ax.imshow(image, cmap="magma")
        ax.set_title(f"layer {layer}: log10 Σ posterior")
        ax.axis("off")
        fig.colorbar(shown, ax=ax, fraction=0.046)
    return fig


def plot_promotion(history: TrainHistory) -> Figure:
    """Masked fraction per iteration and cumulative promotion resets (spec §3.1)."""
    iterations = np.arange(1, len(history.masked_fraction) + 1)
    fig = Figure(figsize=(7, 5), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True)
    top.plot(iterations, history.masked_fraction, lw=0.8)
    top.set_ylabel("masked fraction")
    top.set_ylim(0, 1)
    resets = np.asarray(history.resets)
    bottom.step(resets, np.arange(1, len(resets) + 1), where="post")
    bottom.set_ylabel("cumulative resets")
    bottom.set_xlabel("iteration")
    return fig


def label_rgb(labels: np.ndarray, schema: ClassSchema, by_id: bool) -> np.ndarray:
    """H×W×3 colours of a label map (class ids when ``by_id``, else class positions); others white."""
    lut = np.full(256, -1, dtype=np.int64)
    lut[list(schema.ids) if by_id else list(range(schema.num_classes))] = np.arange(schema.num_classes)
    positions = lut[np.clip(labels, 0, 255)]
    rgb = np.ones((*labels.shape, 3))
    rgb[positions >= 0] = schema.rgb()[positions[positions >= 0]]
    return rgb


def image_rgb(image: Tensor, channels: Sequence[int]) -> np.ndarray:
    """H×W×3 composite of three image channels, each stretched to its 2–98 % range."""
    rgb = image[list(channels)].permute(1, 2, 0).numpy().astype(np.float64)
    low = np.percentile(rgb, 2, axis=(0, 1), keepdims=True)
    high = np.percentile(rgb, 98, axis=(0, 1), keepdims=True)
    return np.clip((rgb - low) / np.maximum(high - low, 1e-12), 0, 1)


def plot_lsr_comparison(
    tiles: Sequence[LabelledTile],
    predictions: Mapping[str, Sequence[Tensor]],
    coarse_schema: ClassSchema,
    fine_schema: ClassSchema,
    rgb_channels: Sequence[int],
    title: str,
) -> Figure:
    """Per tile: input, coarse labels, every variant's map and the truth side by side (class colours
    from ``config/tables``)."""
    columns = ["input", "coarse labels", *predictions, "truth"]
    fig = Figure(figsize=(2.4 * len(columns), 2.4 * len(tiles) + 1.2), layout="constrained")
    axes = fig.subplots(len(tiles), len(columns), squeeze=False)
    for row, tile in enumerate(tiles):
        panels = [
            image_rgb(tile.image, rgb_channels),
            label_rgb(tile.coarse.numpy(), coarse_schema, by_id=True),
            *[label_rgb(maps[row].numpy(), fine_schema, by_id=False) for maps in predictions.values()],
            label_rgb(tile.truth.numpy(), fine_schema, by_id=False),
        ]
        for ax, name, panel in zip(axes[row], columns, panels):
            ax.imshow(panel, interpolation="nearest")
            ax.set_title(f"{tile.name}\n{name}" if name == "input" else name, fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
    handles = [Patch(color=colour, label=name) for name, colour in zip(fine_schema.names, fine_schema.colors)]
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 8), fontsize=7, frameon=False)
    fig.suptitle(title, fontsize=10)
    return fig


def plot_losses(losses: Sequence[float], title: str, ylabel: str = "loss") -> Figure:
    """A training curve (epitome loss per iteration, distilled FCN loss per epoch)."""
    fig = Figure(figsize=(6, 3.5), layout="constrained")
    ax = fig.subplots()
    ax.plot(np.arange(1, len(losses) + 1), losses, lw=0.8)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    return fig
