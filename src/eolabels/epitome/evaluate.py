"""Scoring LSR maps against the truth (the tables are written by :mod:`eolabels.report.tables`).

Metrics come from :mod:`eolabels.metrics` only.  Two mIoU conventions are reported side by side:
``mIoU`` averages over every class of the schema (a class absent from truth and prediction scores 1,
the project convention) and ``mIoU_present`` over the classes present in the truth (the convention of
the LSR papers' tables: a tile without water says nothing about water).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import pandas as pd
from torch import Tensor

from eolabels.epitome.data import LabelledTile
from eolabels.metrics import SegmentationMetrics, metrics_from_confusion

POOLED = "all tiles"


def score_row(metrics: SegmentationMetrics, class_names: Sequence[str]) -> dict[str, float]:
    """OA, AA, both mIoU conventions, mF1 and per-class IoU of one confusion matrix."""
    every = metrics.compute()
    present = metrics_from_confusion(metrics.matrix, metrics.zero_division, average_over="present")
    row = {
        "OA": every["OA"], "AA": every["AA"], "mIoU": every["mIoU"], "mIoU_present": present["mIoU"],
        "mF1": every["mF1"], "AA_present": present["AA"], "mF1_present": present["mF1"],
    }
    row.update({f"IoU_{name}": float(iou) for name, iou in zip(class_names, every["iou"])})
    return row


def score_variants(
    tiles: Sequence[LabelledTile], predictions: Mapping[str, Sequence[Tensor]], class_names: Sequence[str],
    per_tile: bool = True,
) -> pd.DataFrame:
    """One row per (variant, tile) when ``per_tile`` and one pooled row per variant (one confusion matrix
    over all tiles, no per-tile averaging)."""
    rows = []
    for variant, maps in predictions.items():
        pooled = SegmentationMetrics(len(class_names))
        for tile, prediction in zip(tiles, maps, strict=True):
            pooled.update(tile.truth, prediction)
            if per_tile:
                single = SegmentationMetrics(len(class_names))
                single.update(tile.truth, prediction)
                rows.append({"variant": variant, "tile": tile.name, **score_row(single, class_names)})
        rows.append({"variant": variant, "tile": POOLED, **score_row(pooled, class_names)})
    return pd.DataFrame(rows)
