"""One confusion-matrix implementation for every stage of the workflow.

The matrix is accumulated over a whole evaluation set (no per-image averaging), exactly as the
CromSS evaluation does (spec cromss.md §8): pixels whose target equals the ignore index are dropped,
then per-class tp/fp/fn are read off the summed matrix.  Ratios whose denominator is zero take the
value ``zero_division`` (1.0 in the reference, i.e. smp's ``zero_division=1.0``), so a class absent
from both targets and predictions scores IoU = F1 = 1, and means divide by the number of classes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

IGNORE_INDEX = 255


def confusion_matrix(
    target: Any, prediction: Any, num_classes: int, ignore_index: int | None = IGNORE_INDEX
) -> np.ndarray:
    """Count matrix ``M[t, p]`` of (target t, predicted p) pixel pairs, int64.

    Accepts NumPy arrays or torch tensors of any (equal) shape.  Pixels whose target is
    ``ignore_index`` are dropped; any other target or prediction outside ``[0, num_classes)`` is an
    error, because silently dropping it would inflate every metric.
    """
    t = _as_int_array(target).ravel()
    p = _as_int_array(prediction).ravel()
    if t.shape != p.shape:
        raise ValueError(f"target has {t.size} pixels but prediction has {p.size}")
    if ignore_index is not None:
        keep = t != ignore_index
        t, p = t[keep], p[keep]
    for name, arr in (("target", t), ("prediction", p)):
        if arr.size and (arr.min() < 0 or arr.max() >= num_classes):
            bad = arr[(arr < 0) | (arr >= num_classes)][0]
            raise ValueError(f"{name} holds class id {bad}, outside 0..{num_classes - 1}")
    return np.bincount(t * num_classes + p, minlength=num_classes**2).reshape(
        num_classes, num_classes
    ).astype(np.int64)


def _as_int_array(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor, without importing torch here
        x = x.detach().cpu().numpy()
    return np.asarray(x).astype(np.int64, copy=False)


def _ratio(num: np.ndarray, den: np.ndarray, zero_division: float) -> np.ndarray:
    num = num.astype(np.float64)
    den = den.astype(np.float64)
    out = np.full_like(num, float(zero_division))
    np.divide(num, den, out=out, where=den != 0)
    return out


@dataclass
class SegmentationMetrics:
    """Accumulates a confusion matrix over batches and reports the papers' metrics.

    ``update`` takes class-id maps (already arg-maxed).  ``compute`` returns OA, AA (mean recall,
    the paper's "AA"), mIoU, mF1 and the per-class IoU, F1, precision and recall.
    """

    num_classes: int
    ignore_index: int | None = IGNORE_INDEX
    zero_division: float = 1.0
    average_over: str = "all"
    matrix: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        if self.num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {self.num_classes}")
        self.matrix = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)

    def update(self, target: Any, prediction: Any) -> None:
        self.matrix += confusion_matrix(target, prediction, self.num_classes, self.ignore_index)

    def reset(self) -> None:
        self.matrix[:] = 0

    def compute(self) -> dict[str, Any]:
        return metrics_from_confusion(self.matrix, self.zero_division, self.average_over)


def metrics_from_confusion(
    matrix: np.ndarray, zero_division: float = 1.0, average_over: str = "all"
) -> dict[str, Any]:
    """OA, AA, mIoU, mF1 and per-class scores from a ``[target, prediction]`` count matrix.

    ``average_over="all"`` divides the means by the number of classes (CromSS spec §8, where a class
    absent from targets and predictions scores 1); ``"present"`` averages only over classes that occur
    in the targets, the convention of the LSR evaluations (a tile with no water says nothing about
    water).
    """
    if average_over not in ("all", "present"):
        raise ValueError(f"average_over must be 'all' or 'present', got {average_over!r}")
    m = np.asarray(matrix, dtype=np.int64)
    tp = np.diag(m)
    fp = m.sum(axis=0) - tp
    fn = m.sum(axis=1) - tp
    iou = _ratio(tp, tp + fp + fn, zero_division)
    f1 = _ratio(2 * tp, 2 * tp + fp + fn, zero_division)
    precision = _ratio(tp, tp + fp, zero_division)
    recall = _ratio(tp, tp + fn, zero_division)
    total = m.sum()
    oa = float(tp.sum() / total) if total else float(zero_division)
    present = m.sum(axis=1) > 0
    keep = present if average_over == "present" and present.any() else np.ones_like(present)
    return {
        "OA": oa,
        "AA": float(recall[keep].mean()),
        "mIoU": float(iou[keep].mean()),
        "mF1": float(f1[keep].mean()),
        "iou": iou,
        "f1": f1,
        "precision": precision,
        "recall": recall,
        "support": m.sum(axis=1),
        "n_pixels": int(total),
    }


def summary_row(scores: dict[str, Any], class_names: list[str] | None = None) -> dict[str, float]:
    """Flatten ``metrics_from_confusion`` output into one table row (means + per-class IoU)."""
    row = {k: float(scores[k]) for k in ("OA", "AA", "mIoU", "mF1")}
    names = class_names or [str(i) for i in range(len(scores["iou"]))]
    if len(names) != len(scores["iou"]):
        raise ValueError(f"{len(names)} class names for {len(scores['iou'])} classes")
    row.update({f"IoU_{n}": float(v) for n, v in zip(names, scores["iou"])})
    return row
