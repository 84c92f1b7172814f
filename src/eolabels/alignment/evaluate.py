"""Scores of an alignment against a known misregistration (spec §4.5, §5.c acceptance C1-C4).

All errors are measured on the class-boundary pixels of the **misregistered** map (where a map carries
position information), in pixels of the full-resolution grid:

* end-point error ``|D^(p) - D(p)|`` of the predicted field, against ``|D(p)|`` without correction;
* the threshold accuracy of §4.5 for rasters: the fraction of those pixels whose end-point error is
  within ``t`` px, t = 0..8;
* boundary agreement: the fraction of the aligned map's boundary pixels within 1 px (Euclidean
  distance transform) of the true map's boundary.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from eolabels.alignment.channels import boundary_mask

THRESHOLDS = tuple(range(9))


def end_point_error(predicted: np.ndarray, true: np.ndarray) -> np.ndarray:
    """``|D^ - D|`` per pixel (H x W)."""
    return np.sqrt(((predicted - true) ** 2).sum(0))


def threshold_accuracy(errors: np.ndarray, thresholds: tuple[int, ...] = THRESHOLDS) -> np.ndarray:
    """Fraction of ``errors`` within each threshold ``t`` (inclusive), spec §4.5."""
    if errors.size == 0:
        return np.full(len(thresholds), np.nan)
    return np.array([(errors <= t).mean() for t in thresholds])


def boundary_within(labels: np.ndarray, truth: np.ndarray, nodata: int, distance: float = 1.0) -> tuple[int, int]:
    """(count within ``distance`` px of the true boundary, count) over the boundary pixels of ``labels``."""
    mine = boundary_mask(labels, nodata)
    true = boundary_mask(truth, nodata)
    if not true.any():
        return 0, int(mine.sum())
    to_true = ndimage.distance_transform_edt(~true)
    return int((to_true[mine] <= distance).sum()), int(mine.sum())


def tile_scores(misregistered: np.ndarray, aligned: np.ndarray, truth: np.ndarray | None, true_field: np.ndarray,
                predicted: np.ndarray, nodata: int, stages: list[np.ndarray] | None = None,
                stage_scales: list[int] | None = None) -> dict[str, np.ndarray | int]:
    """Sums over one tile (added up over tiles by :func:`summarise`): boundary errors before and
    after, and with ``truth`` the boundary agreement before and after; with ``stages`` the count of
    boundary pixels whose residual after each stage is within its scale (C3)."""
    boundary = boundary_mask(misregistered, nodata)
    before = np.sqrt((true_field[:, boundary] ** 2).sum(0))
    after = end_point_error(predicted, true_field)[boundary]
    out: dict[str, np.ndarray | int] = {"errors_before": before, "errors_after": after}
    if truth is not None:
        out["within1_before"], out["boundary_before"] = boundary_within(misregistered, truth, nodata)
        out["within1_after"], out["boundary_after"] = boundary_within(aligned, truth, nodata)
    for field, scale in zip(stages or [], stage_scales or []):
        out[f"stage{scale}_within"] = int((end_point_error(field, true_field)[boundary] <= scale).sum())
    return out


def summarise(per_tile: list[dict[str, np.ndarray | int]]) -> dict[str, float]:
    """Pooled scores of several tiles: mean EPE before/after and its reduction, threshold accuracies,
    boundary agreement before/after, per-stage contract fractions."""
    before = np.concatenate([t["errors_before"] for t in per_tile]) if per_tile else np.zeros(0)
    after = np.concatenate([t["errors_after"] for t in per_tile]) if per_tile else np.zeros(0)
    out: dict[str, float] = {
        "boundary_pixels": float(before.size),
        "epe_before_px": float(before.mean()) if before.size else np.nan,
        "epe_after_px": float(after.mean()) if after.size else np.nan,
    }
    out["epe_reduction"] = 1.0 - out["epe_after_px"] / out["epe_before_px"] if out["epe_before_px"] > 0 else np.nan
    for t, acc in zip(THRESHOLDS, threshold_accuracy(after)):
        out[f"acc_t{t}"] = float(acc)
    for t, acc in zip(THRESHOLDS, threshold_accuracy(before)):
        out[f"acc_before_t{t}"] = float(acc)
    if per_tile and "within1_before" in per_tile[0]:
        for when in ("before", "after"):
            hits = sum(int(t[f"within1_{when}"]) for t in per_tile)
            total = sum(int(t[f"boundary_{when}"]) for t in per_tile)
            out[f"within1px_{when}"] = hits / total if total else np.nan
    for key in sorted(k for k in (per_tile[0] if per_tile else {}) if k.startswith("stage")):
        out[key.replace("_within", "_contract")] = sum(int(t[key]) for t in per_tile) / max(before.size, 1)
    return out
