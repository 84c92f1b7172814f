"""The paper's toy: sinusoids on the unit circle, neighbour density vs frequency and curvature
(spec netsimilarity.md §2.4, acceptance A1 of §5.a, B1 of §5.b), and the toy stage of the workflow
(``run_toy_study``: table and log-scale figures).

Inputs ``x = (cos 2 pi a, sin 2 pi a)``, ``a`` from a scrambled Sobol sequence (uniform) or with
density ``2a`` (triangular), target ``sin(2 pi f a)`` plus optional Gaussian noise; a ReLU MLP is
fitted full-batch and the density estimators of §2.1 are computed from all its parameters.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import torch
from scipy.stats import qmc, spearmanr
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap
from tqdm.auto import tqdm

from eolabels.similarity.denoise import denoising_factor, kernel_mean, stationarity_residual
from eolabels.similarity.jacobian import JacobianConfig, per_sample_jacobians
from eolabels.similarity.kernel import (
    HARD_THRESHOLDS,
    LESS_SOFT_POWERS,
    feature_map,
    neighbour_counts,
)
from eolabels.report.tables import source_tag, write_table
from eolabels.report.figures import save_figure
from eolabels.similarity.report import TOY_SOURCE

Sampling = Literal["uniform", "triangular"]
TOY_JACOBIAN = JacobianConfig(subset="all", pixel=None, centred=False)


class ToyMLP(nn.Module):
    """ReLU MLP 2 - width x hidden_layers - 1 (``hidden_layers + 1`` linear layers), as ``net``."""

    def __init__(self, width: int = 64, hidden_layers: int = 6) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Linear(2, width), nn.ReLU()]
        for _ in range(hidden_layers - 1):
            layers += [nn.Linear(width, width), nn.ReLU()]
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def circle_positions(n: int, sampling: Sampling, seed: int) -> np.ndarray:
    """Positions ``a`` in [0, 1): scrambled Sobol (uniform) or ``sqrt`` of it (density 2a)."""
    u = qmc.Sobol(d=1, scramble=True, seed=seed).random(n)[:, 0]
    if sampling == "uniform":
        return u
    if sampling == "triangular":
        return np.sqrt(u)
    raise ValueError(f"unknown sampling {sampling!r}; use 'uniform' or 'triangular'")


def circle_inputs(a: np.ndarray) -> np.ndarray:
    """``x = (cos 2 pi a, sin 2 pi a)``, n x 2."""
    return np.stack([np.cos(2 * np.pi * a), np.sin(2 * np.pi * a)], axis=1)


def sinusoid_target(a: np.ndarray, frequency: float) -> np.ndarray:
    """``y = sin(2 pi f a)``."""
    return np.sin(2 * np.pi * frequency * a)


def sinusoid_curvature(a: np.ndarray, frequency: float) -> np.ndarray:
    """Curvature of the target graph ``|y''| / (1 + y'^2)^{3/2}``, derivatives in ``a`` (§2.4)."""
    omega = 2 * np.pi * frequency
    slope = omega * np.cos(omega * a)
    return omega**2 * np.abs(np.sin(omega * a)) / (1 + slope**2) ** 1.5


def fit_toy(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    steps: int,
    lr: float = 1e-3,
    loss: Literal["l1", "l2"] = "l2",
    progress: bool = True,
) -> float:
    """Full-batch Adam with cosine learning-rate decay (in place); returns the final loss.

    ``inputs`` n x 2, ``targets`` n.
    """
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=steps)
    criterion = nn.L1Loss() if loss == "l1" else nn.MSELoss()
    model.train()
    value = torch.tensor(float("nan"))
    for _ in tqdm(range(steps), desc="toy fit", disable=not progress, leave=False):
        optimiser.zero_grad()
        value = criterion(model(inputs)[:, 0], targets)
        value.backward()
        optimiser.step()
        schedule.step()
    return float(value.detach())


def fit_toy_ensemble(
    models: Sequence[nn.Module],
    inputs: Tensor,
    targets: Tensor,
    steps: int,
    lr: float = 1e-3,
    loss: Literal["l1", "l2"] = "l2",
    progress: bool = True,
) -> None:
    """``fit_toy`` for several models at once (in place): ``inputs`` k x n x 2, ``targets`` k x n.

    Why: the toy networks are tiny, so one step costs little more for k stacked models than for
    one.  The models' parameters are stacked (``torch.func.stack_module_state``) and the summed
    loss is minimised; Adam is element-wise and the schedule is shared, so every model follows
    exactly the updates of its own ``fit_toy`` run (to rounding).
    """
    params, buffers = stack_module_state(list(models))
    skeleton = copy.deepcopy(models[0]).to("meta")

    def forward(p: dict[str, Tensor], b: dict[str, Tensor], x: Tensor) -> Tensor:
        return functional_call(skeleton, (p, b), (x,))[:, 0]

    optimiser = torch.optim.Adam(params.values(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=steps)
    residual = (lambda r: r.abs()) if loss == "l1" else (lambda r: r.pow(2))
    for _ in tqdm(range(steps), desc="toy fit", disable=not progress, leave=False):
        optimiser.zero_grad()
        predictions = vmap(forward)(params, buffers, inputs)
        residual(predictions - targets).mean(dim=1).sum().backward()
        optimiser.step()
        schedule.step()
    with torch.no_grad():
        for i, model in enumerate(models):
            for name, tensor in model.named_parameters():
                tensor.copy_(params[name][i])


@dataclass
class ToyRun:
    """One trained toy network and its per-sample densities (self included, spec §2.1)."""

    frequency: float
    sampling: str
    seed: int
    noise_std: float
    a: np.ndarray
    target: np.ndarray
    noisy_target: np.ndarray
    prediction: np.ndarray
    counts: dict[str, np.ndarray]
    model: nn.Module
    inputs: Tensor


@dataclass(frozen=True)
class ToySetting:
    """Data of one toy run: target frequency, sampling of ``a``, seed, label-noise std."""

    frequency: float
    sampling: Sampling = "uniform"
    seed: int = 0
    noise_std: float = 0.0


def run_toys(
    settings: Sequence[ToySetting],
    n: int = 256,
    steps: int = 3000,
    lr: float = 1e-3,
    loss: Literal["l1", "l2"] = "l2",
    width: int = 64,
    hidden_layers: int = 6,
    dtype: torch.dtype = torch.float64,
    thresholds: Sequence[float] = HARD_THRESHOLDS,
    powers: Sequence[int] = LESS_SOFT_POWERS,
    progress: bool = True,
) -> list[ToyRun]:
    """Draw each setting's data, fit one MLP per setting (all at once, ``fit_toy_ensemble``), and compute every density
    estimator over its training set with all parameters (spec §2.4)."""
    data = []
    for s in settings:
        a = circle_positions(n, s.sampling, s.seed)
        target = sinusoid_target(a, s.frequency)
        noise = (
            np.random.default_rng(s.seed).normal(0.0, s.noise_std, n) if s.noise_std > 0 else 0.0
        )
        torch.manual_seed(s.seed)
        model = ToyMLP(width, hidden_layers).to(dtype)
        data.append((s, a, target, target + noise, model))
    fit_toy_ensemble(
        [d[4] for d in data],
        torch.stack([torch.as_tensor(circle_inputs(d[1]), dtype=dtype) for d in data]),
        torch.stack([torch.as_tensor(d[3], dtype=dtype) for d in data]),
        steps,
        lr,
        loss,
        progress,
    )
    runs = []
    for s, a, target, noisy, model in tqdm(data, desc="toy densities", disable=not progress):
        x = torch.as_tensor(circle_inputs(a), dtype=dtype)
        with torch.no_grad():
            prediction = model(x)[:, 0].numpy()
        jac = per_sample_jacobians(model, x, TOY_JACOBIAN, batch_size=n, progress=False)
        counts = neighbour_counts(feature_map(jac)[0], thresholds=thresholds, powers=powers)
        runs.append(
            ToyRun(
                frequency=s.frequency,
                sampling=s.sampling,
                seed=s.seed,
                noise_std=s.noise_std,
                a=a,
                target=target,
                noisy_target=np.asarray(noisy),
                prediction=prediction,
                counts={k: v.numpy() for k, v in counts.items()},
                model=model,
                inputs=x,
            )
        )
    return runs


def _rms(values: Tensor) -> float:
    return float(values.pow(2).mean().sqrt())


def toy_denoising_diagnostics(run: ToyRun) -> dict[str, float]:
    """Self-denoising diagnostics of a toy fitted to noisy targets (spec §3.3, acceptance B1).

    ``rmse_clean``: prediction vs the clean target; ``stationarity``: relative residual
    ``|E_k[y^] - E_k[y~]| / |E_k[y~]|``; ``noise_ratio``: ``rms_i E_k[eps]_i / (sigma rms_i rho_i)``
    (1 when the kernel-averaged noise has the size the denoising factor predicts); the median
    denoising factor ``rho`` and ``n_eff = 1/rho^2`` at that median.
    """
    if run.noise_std <= 0:
        raise ValueError("denoising diagnostics need a run with label noise (noise_std > 0)")
    jac = per_sample_jacobians(
        run.model, run.inputs, TOY_JACOBIAN, batch_size=len(run.a), progress=False
    ).double()
    prediction = torch.as_tensor(run.prediction, dtype=jac.dtype)
    noisy = torch.as_tensor(run.noisy_target, dtype=jac.dtype)
    noise = noisy - torch.as_tensor(run.target, dtype=jac.dtype)
    rho = denoising_factor(jac)
    averaged_noise = kernel_mean(jac, noise)[:, 0]
    median_rho = float(rho.median())
    return {
        "rmse_clean": math.sqrt(float(np.mean((run.prediction - run.target) ** 2))),
        "stationarity": stationarity_residual(jac, prediction, noisy),
        "noise_ratio": _rms(averaged_noise) / (run.noise_std * _rms(rho)),
        "median_rho": median_rho,
        "n_eff": 1.0 / median_rho**2,
    }


def toy_table_rows(runs: Sequence[ToyRun]) -> list[dict[str, float | str]]:
    """Rows of the ``similarity_toy`` table: one per (sampling, frequency), the median over runs of
    the per-run mean of every estimator, and per-sample Spearman correlations of ``N_S`` with the
    hard counts and with ``a`` (spec §2.4, §5.a A1)."""
    groups: dict[tuple[str, float], list[ToyRun]] = {}
    for run in runs:
        groups.setdefault((run.sampling, run.frequency), []).append(run)
    rows = []
    for (sampling, frequency), group in sorted(groups.items()):
        row: dict[str, float | str] = {
            "sampling": sampling,
            "frequency": frequency,
            "runs": len(group),
        }
        for key in group[0].counts:
            row[f"mean_{key}"] = float(np.median([r.counts[key].mean() for r in group]))
        for key in group[0].counts:
            if key.startswith("hard_t"):
                rho = [spearmanr(r.counts["soft"], r.counts[key]).statistic for r in group]
                row[f"spearman_soft_{key}"] = float(np.median(rho))
        row["spearman_soft_a"] = float(
            np.median([spearmanr(r.counts["soft"], r.a).statistic for r in group])
        )
        row["rmse_vs_target"] = float(
            np.median([math.sqrt(np.mean((r.prediction - r.target) ** 2)) for r in group])
        )
        rows.append(row)
    return rows


def plot_toy_density(runs: Sequence[ToyRun], path: str | Path, estimator: str = "soft") -> None:
    """Log-scale figure: density vs position ``a`` and vs target curvature, one colour per frequency
    (spec §2.4).  Written through a temporary file so an interrupted run leaves nothing."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_a, ax_curv) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    frequencies = sorted({r.frequency for r in runs})
    colours = plt.cm.viridis(np.linspace(0, 0.9, len(frequencies)))
    for freq, colour in zip(frequencies, colours):
        labelled: set[str] = set()
        for run in (r for r in runs if r.frequency == freq):
            label = None if run.sampling in labelled else f"f = {freq:g} ({run.sampling})"
            labelled.add(run.sampling)
            style = "-" if run.sampling == "uniform" else "--"
            marker = "o" if run.sampling == "uniform" else "^"
            order = np.argsort(run.a)
            density = np.maximum(run.counts[estimator], 1e-3)
            ax_a.plot(run.a[order], density[order], style, color=colour, lw=1, label=label)
            curvature = sinusoid_curvature(run.a, freq)
            ax_curv.scatter(
                np.maximum(curvature, 1e-4), density, s=4, marker=marker, color=colour, label=label
            )
    ax_a.set(xlabel="position a on the circle", ylabel=f"N ({estimator})", yscale="log")
    ax_curv.set(
        xlabel="target curvature |y''| / (1 + y'^2)^{3/2}",
        ylabel=f"N ({estimator})",
        xscale="log",
        yscale="log",
    )
    ax_a.legend(fontsize=8)
    fig.suptitle(f"Neighbour density on the paper's toy — {source_tag(TOY_SOURCE)}", fontsize=10)
    save_figure(fig, path, dpi=120)



@dataclass(frozen=True)
class ToyStudy:
    """The toy experiment of a workflow run (spec §2.4): which settings, how many runs, how fitted."""

    frequencies: tuple[float, ...] = (1, 2, 4, 8)
    triangular_frequencies: tuple[float, ...] = (1, 4)
    runs: int = 1
    n: int = 256
    steps: int = 3000
    lr: float = 1e-3
    loss: Literal["l1", "l2"] = "l2"
    width: int = 64
    hidden_layers: int = 6
    float64: bool = True

    def settings(self, seed: int) -> list[ToySetting]:
        """Every (sampling, frequency) setting, ``runs`` seeds each (seed, seed + 1, ...)."""
        return [
            ToySetting(f, sampling, seed + k)
            for sampling, freqs in (("uniform", self.frequencies), ("triangular", self.triangular_frequencies))
            for f in freqs
            for k in range(self.runs)
        ]


def run_toy_study(
    study: ToyStudy,
    seed: int,
    table_csv: str | Path,
    table_md: str | Path,
    figures: dict[str, str | Path],
) -> list[dict[str, float | str]]:
    """Fit every toy of ``study``, write the table (CSV + Markdown) and one log-scale figure per
    estimator named in ``figures`` (e.g. ``{"soft": ..., "hard_t0.9": ...}``); returns the rows."""
    runs = run_toys(
        study.settings(seed),
        n=study.n,
        steps=study.steps,
        lr=study.lr,
        loss=study.loss,
        width=study.width,
        hidden_layers=study.hidden_layers,
        dtype=torch.float64 if study.float64 else torch.float32,
    )
    rows = toy_table_rows(runs)
    write_table(
        pd.DataFrame(rows),
        table_csv,
        table_md,
        f"Neighbour density on the paper's toy (spec netsimilarity.md §2.4) — {source_tag(TOY_SOURCE)}",
        [
            "Sinusoids sin(2 pi f a) on the unit circle; mean of every density estimator of spec §2.1 "
            "(self included), median over runs; Spearman correlations per sample. A toy, not the "
            "paper's numbers.",
            f"n = {study.n}, MLP 2-{study.width}x{study.hidden_layers}-1, {study.steps} full-batch "
            f"Adam steps, lr {study.lr} cosine, {study.loss.upper()} loss, {study.runs} run(s) per setting.",
        ],
        source=TOY_SOURCE,
    )
    for estimator, path in figures.items():
        plot_toy_density(runs, path, estimator)
    return rows
