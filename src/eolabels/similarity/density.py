"""Streaming two-pass soft neighbour counts with a stored accumulator (spec netsimilarity.md §2.2).

Pass 1 sums the whitened Jacobians of the reference (training) samples into ``S = sum_j A_j``
(m x d) and, when labels are given, one class accumulator ``S_c`` per class.  Pass 2 scores any
sample with one Jacobian: ``N_S(x_i) = tr(A_i^T S) / d`` and ``N_S^c(x_i) = tr(A_i^T S_c) / d``.
Also the density audit of §5.a: label-support scores, ``unreliable`` / ``suspicious label`` flags
and the coarse per-tile density map (a numpy array; the workflow writes it as GeoTIFF).

The accumulator carries the fingerprint of the network, parameter subset, output map, sketch and
band count that produced it, and refuses Jacobians from anything else.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import asdict

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from eolabels.atomic import atomic_path
from eolabels.similarity.jacobian import (
    JacobianConfig,
    NetworkFingerprint,
    network_fingerprint,
    per_sample_jacobians,
)
from eolabels.similarity.kernel import whiten_jacobians

UNLABELLED = 255


def _on_cpu(tensor: Tensor | None) -> Tensor | None:
    return None if tensor is None else tensor.cpu()


class SoftDensityAccumulator:
    """``S_train = sum_j A_j`` and class sums ``S_c`` for one network fingerprint (spec §2.2, §5.a),
    plus the unnormalised sum ``sum_j J_j^T`` for the code's unnormalised soft count.

    Counts include the scored sample itself when it was accumulated (spec §2.1); pass
    ``exclude_self=True`` to remove it.
    """

    def __init__(self, fingerprint: NetworkFingerprint, num_classes: int | None = None) -> None:
        self.fingerprint = fingerprint
        self.num_classes = num_classes
        self.total: Tensor | None = None
        self.raw_total: Tensor | None = None
        self.class_totals: Tensor | None = None
        self.count = 0
        self.n_clamped = 0

    def _check(self, fingerprint: NetworkFingerprint) -> None:
        problems = self.fingerprint.mismatches(fingerprint)
        if problems:
            raise ValueError(
                "Jacobians do not belong to the network this density accumulator was built "
                "from: " + "; ".join(problems)
            )

    def add(
        self, jac: Tensor, fingerprint: NetworkFingerprint, labels: Tensor | None = None
    ) -> None:
        """Pass 1: accumulate reference Jacobians ``jac`` (n x d x m); ``labels`` (n,) feed ``S_c``
        (``255`` = unlabelled: counted in ``S`` only)."""
        self._check(fingerprint)
        whitened, n_clamped = whiten_jacobians(jac)
        self.n_clamped += n_clamped
        batch_sum = whitened.sum(dim=0)
        if self.total is None:
            self.total = torch.zeros_like(batch_sum)
            self.raw_total = torch.zeros_like(batch_sum)
        elif self.total.shape != batch_sum.shape:
            raise ValueError(
                f"Jacobian blocks of shape {tuple(batch_sum.shape)} do not match the "
                f"accumulator's {tuple(self.total.shape)}"
            )
        self.total += batch_sum.to(self.total.device)
        self.raw_total += jac.sum(dim=0).T.to(self.total.device)
        self.count += jac.shape[0]
        if self.num_classes is None:
            if labels is not None:
                raise ValueError("labels given to an accumulator built without num_classes")
            return
        if labels is None:
            raise ValueError(f"this accumulator keeps {self.num_classes} class sums: pass labels")
        labels = torch.as_tensor(labels, device=whitened.device).long()
        valid = labels != UNLABELLED
        if (labels[valid] < 0).any() or (labels[valid] >= self.num_classes).any():
            raise ValueError(f"labels must lie in 0..{self.num_classes - 1} or be {UNLABELLED}")
        if self.class_totals is None:
            self.class_totals = whitened.new_zeros(self.num_classes, *batch_sum.shape)
        device = self.class_totals.device
        self.class_totals.index_add_(0, labels[valid].to(device), whitened[valid].to(device))

    def _whitened_query(self, jac: Tensor, fingerprint: NetworkFingerprint) -> Tensor:
        self._check(fingerprint)
        if self.total is None:
            raise ValueError("the accumulator is empty: run pass 1 (add) first")
        whitened, _ = whiten_jacobians(jac)
        if whitened.shape[1:] != self.total.shape:
            raise ValueError(
                f"query Jacobians give blocks {tuple(whitened.shape[1:])}, accumulator holds "
                f"{tuple(self.total.shape)}"
            )
        return whitened

    def soft_count(
        self, jac: Tensor, fingerprint: NetworkFingerprint, exclude_self: bool = False
    ) -> Tensor:
        """Pass 2: ``N_S(x_i) = tr(A_i^T S) / d`` (spec §2.2)."""
        whitened = self._whitened_query(jac, fingerprint)
        total = self.total.to(whitened.device)
        counts = torch.einsum("imd,md->i", whitened, total) / whitened.shape[2]
        return counts - 1 if exclude_self else counts

    def unnormalised_soft_count(self, jac: Tensor, fingerprint: NetworkFingerprint) -> Tensor:
        """``tr(J_i sum_j J_j^T) / d``, the code's unnormalised 2-pass count (``g_i . sum_j g_j``
        for d = 1) (spec §2.2)."""
        self._whitened_query(jac, fingerprint)
        return torch.einsum("idm,md->i", jac, self.raw_total.to(jac.device)) / jac.shape[1]

    def class_soft_counts(self, jac: Tensor, fingerprint: NetworkFingerprint) -> Tensor:
        """``N_S^c(x_i) = tr(A_i^T S_c) / d``, n x C; self counts in its label's column (§2.2)."""
        if self.class_totals is None:
            raise ValueError("no class accumulators: build with num_classes and labels")
        whitened = self._whitened_query(jac, fingerprint)
        class_totals = self.class_totals.to(whitened.device)
        return torch.einsum("imd,cmd->ic", whitened, class_totals) / whitened.shape[2]

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write atomically (temporary file, then rename), tensors on the CPU."""
        state = {
            "fingerprint": asdict(self.fingerprint),
            "num_classes": self.num_classes,
            "total": _on_cpu(self.total),
            "raw_total": _on_cpu(self.raw_total),
            "class_totals": _on_cpu(self.class_totals),
            "count": self.count,
            "n_clamped": self.n_clamped,
        }
        with atomic_path(path) as tmp:
            torch.save(state, tmp)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> SoftDensityAccumulator:
        """Read an accumulator written by ``save``; anything else fails naming the file."""
        try:
            state = torch.load(path, weights_only=True)
            acc = cls(NetworkFingerprint(**state["fingerprint"]), state["num_classes"])
            acc.total, acc.class_totals = state["total"], state["class_totals"]
            acc.raw_total = state["raw_total"]
            acc.count, acc.n_clamped = state["count"], state["n_clamped"]
        except (
            OSError,
            RuntimeError,
            EOFError,
            pickle.UnpicklingError,
            KeyError,
            TypeError,
        ) as err:
            raise ValueError(f"{path}: not a readable density accumulator ({err})") from err
        return acc


def accumulate_reference(
    model: nn.Module,
    patches: Tensor,
    config: JacobianConfig = JacobianConfig(),
    labels: Tensor | None = None,
    num_classes: int | None = None,
    batch_size: int = 32,
    accumulator: SoftDensityAccumulator | None = None,
) -> SoftDensityAccumulator:
    """Pass 1 over reference ``patches`` (n x bands x H x W, or n x features) (spec §2.2).

    Jacobians are computed and accumulated batch by batch (memory O(m d)); pass an existing
    ``accumulator`` to continue streaming.
    """
    fingerprint = network_fingerprint(model, config, patches.shape[1])
    if accumulator is None:
        accumulator = SoftDensityAccumulator(fingerprint, num_classes)
    else:
        accumulator._check(fingerprint)
    starts = range(0, patches.shape[0], batch_size)
    for start in tqdm(starts, desc="density pass 1", disable=len(starts) < 4):
        rows = slice(start, start + batch_size)
        jac = per_sample_jacobians(model, patches[rows], config, batch_size, progress=False)
        accumulator.add(jac, fingerprint, None if labels is None else labels[rows])
    return accumulator


def score_patches(
    accumulator: SoftDensityAccumulator,
    model: nn.Module,
    patches: Tensor,
    config: JacobianConfig = JacobianConfig(),
    batch_size: int = 32,
    exclude_self: bool = False,
    with_classes: bool = False,
) -> tuple[Tensor, Tensor | None]:
    """Pass 2: ``N_S`` (n,) and, if ``with_classes``, ``N_S^c`` (n x C) of ``patches`` (spec §2.2).

    The network fingerprint is checked before any Jacobian is computed.
    """
    fingerprint = network_fingerprint(model, config, patches.shape[1])
    accumulator._check(fingerprint)
    soft, per_class = [], []
    starts = range(0, patches.shape[0], batch_size)
    for start in tqdm(starts, desc="density pass 2", disable=len(starts) < 4):
        jac = per_sample_jacobians(
            model, patches[start : start + batch_size], config, batch_size, progress=False
        )
        soft.append(accumulator.soft_count(jac, fingerprint, exclude_self))
        if with_classes:
            per_class.append(accumulator.class_soft_counts(jac, fingerprint))
    return torch.cat(soft), torch.cat(per_class) if with_classes else None


# --- density audit (spec §5.a) ---------------------------------------------------------------


def label_support(soft: Tensor, class_soft: Tensor, labels: Tensor) -> Tensor:
    """``s_i = (N_S^{y~_i}(x_i) - 1) / (N_S(x_i) - 1)`` clipped to [0, 1] (spec §5.a).

    Counts include self (remove it with the -1s); ``NaN`` for unlabelled samples (255) and where
    the sample has no neighbours besides itself (``N_S <= 1``).
    """
    labels = torch.as_tensor(labels, device=soft.device).long()
    valid = labels != UNLABELLED
    own = torch.full_like(soft, float("nan"))
    own[valid] = class_soft[valid, labels[valid]]
    others = soft - 1
    support = ((own - 1) / others).clamp(0, 1)
    return torch.where(valid & (others > 0), support, torch.full_like(soft, float("nan")))


def audit_flags(soft: Tensor, support: Tensor | None, training_soft: Tensor) -> dict[str, Tensor]:
    """Flags of spec §5.a: ``unreliable`` where ``N_S`` is below the 5th percentile of the
    training ``N_S``; ``suspicious_label`` where ``s_i < 0.5`` and ``N_S`` is above the training
    median (enough neighbours to trust their vote)."""
    low = torch.quantile(training_soft.double(), 0.05).to(soft.dtype)
    flags = {"unreliable": soft < low}
    if support is not None:
        median = training_soft.median().to(soft.dtype)
        flags["suspicious_label"] = (support < 0.5) & (soft > median)
    return flags


def grid_centres(height: int, width: int, stride: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Centre pixels of the sampling grid of spec §5.a: ``stride // 2 + k * stride`` along each
    axis; grid cell (i, j) covers pixels ``[i s, (i+1) s) x [j s, (j+1) s)`` of the tile, so the
    coarse map's transform is the tile's scaled by ``stride``."""
    return np.arange(stride // 2, height, stride), np.arange(stride // 2, width, stride)


def extract_patches(image: Tensor, rows: np.ndarray, cols: np.ndarray, context: int = 64) -> Tensor:
    """Context windows (``context`` px, reflect-padded at tile borders) centred on every grid
    point, ``len(rows) * len(cols) x bands x context x context``, row-major grid order.  The centre
    pixel of a window is ``(context // 2, context // 2)``, the Jacobians' ``pixel="centre"``.
    Memory grows with the grid (n x bands x context^2): call it on row blocks of large tiles."""
    half = context // 2
    padded = torch.nn.functional.pad(image[None], (half, half, half, half), mode="reflect")[0]
    return torch.stack([padded[:, r : r + context, c : c + context] for r in rows for c in cols])


def density_grid(soft: Tensor, n_rows: int, n_cols: int) -> np.ndarray:
    """Coarse density map ``log N_S`` at the grid centres, float32, ``n_rows x n_cols`` (spec §5.a);
    non-positive counts (possible with negative similarities) map to NaN."""
    values = soft.detach().double().cpu().numpy().reshape(n_rows, n_cols)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(values > 0, np.log(values), np.nan).astype(np.float32)


def density_summary(log_density: np.ndarray) -> dict[str, float]:
    """Per-tile table row: median and 5th percentile of ``log N_S`` (spec §5.a)."""
    finite = log_density[np.isfinite(log_density)]
    if finite.size == 0:
        return {"median_log_density": float("nan"), "p05_log_density": float("nan")}
    return {
        "median_log_density": float(np.median(finite)),
        "p05_log_density": float(np.percentile(finite, 5)),
    }
