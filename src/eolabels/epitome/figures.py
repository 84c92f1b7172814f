"""Figures for epitome training: means as RGB, posterior usage, promotion resets.

Figures are built as bare ``matplotlib.figure.Figure`` objects (Agg canvas on ``savefig``), so no
pyplot state or GUI backend is touched.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor

from eolabels.epitome.model import GaussianEpitome, log_joint, posterior
from eolabels.epitome.train import TrainHistory


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
