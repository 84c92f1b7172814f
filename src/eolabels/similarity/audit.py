"""The density audit stage (spec netsimilarity.md §5.a) over a trained segmentation network.

Pass 1 over training samples (centre pixels on a stride-s grid of every training tile, a context
window around each) builds ``S_train`` and the class accumulators ``S_c`` from the training labels;
pass 2 scores the training samples (``N_S``, ``N_S^c``, label support, flags) and held-out tiles
(``N_S``).  Outputs: one coarse ``log N_S`` GeoTIFF per tile, a per-tile table, a per-sample table,
the acceptance measures A2 and A3 against the truth, and figures.

Any segmentation network works: ``run_density_audit`` takes a ``Segmenter`` (the network and its
input normalisation); ``stages.audit_stage`` loads one saved by ``Segmenter.save``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import roc_auc_score
from torch import Tensor

from eolabels.atomic import atomic_path
from eolabels.data.geotiff import GridSpec, write_geotiff
from eolabels.similarity.audit_figures import plot_audit_tiles, plot_density_deciles
from eolabels.similarity.density import (
    SoftDensityAccumulator,
    accumulate_reference,
    audit_flags,
    density_grid,
    density_summary,
    extract_patches,
    grid_centres,
    label_support,
    score_patches,
)
from eolabels.similarity.jacobian import JacobianConfig
from eolabels.similarity.report import SYNTHETIC_NOTE, write_table
from eolabels.similarity.segmentation import Segmenter, predict_probabilities
from eolabels.similarity.tiles import TileSet, load_tiles
from eolabels.tables import ClassSchema, load_schema

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AuditSettings:
    """Sampling grid (stride, context window) and Jacobian options of the audit (spec §5.a)."""

    subset: str = "last_block+head"
    stride: int = 16
    context: int = 64
    sketch_dim: int | None = None
    batch_size: int = 64
    figure_tiles: int = 3

    @property
    def jacobian(self) -> JacobianConfig:
        return JacobianConfig(subset=self.subset, pixel="centre", centred=True, sketch_dim=self.sketch_dim)


def coarse_grid(grid: GridSpec, stride: int, n_rows: int, n_cols: int) -> GridSpec:
    """The grid of a density map: the tile's transform with pixels ``stride`` times larger."""
    a, b, c, d, e, f = grid.transform
    return GridSpec(grid.crs, (a * stride, b * stride, c, d * stride, e * stride, f), n_rows, n_cols)


def tile_samples(image: Tensor, stride: int, context: int) -> tuple[Tensor, np.ndarray, np.ndarray]:
    """Context windows at the grid centres of one normalised tile, and the centres' rows/cols."""
    rows, cols = grid_centres(image.shape[1], image.shape[2], stride)
    return extract_patches(image, rows, cols, context), rows, cols


def build_accumulator(
    segmenter: Segmenter,
    images: Tensor,
    labels: np.ndarray,
    settings: AuditSettings,
) -> SoftDensityAccumulator:
    """Pass 1 over every training tile: ``S_train`` and ``S_c`` from the labels at the centres."""
    accumulator = None
    for image, label in zip(images, labels):
        patches, rows, cols = tile_samples(image, settings.stride, settings.context)
        centre_labels = torch.as_tensor(label[np.ix_(rows, cols)].reshape(-1).astype(np.int64))
        accumulator = accumulate_reference(
            segmenter.model,
            patches,
            settings.jacobian,
            labels=centre_labels,
            num_classes=segmenter.classes,
            batch_size=settings.batch_size,
            accumulator=accumulator,
        )
    if accumulator is None:
        raise ValueError("no training tiles to accumulate")
    return accumulator


def score_tiles(
    accumulator: SoftDensityAccumulator,
    segmenter: Segmenter,
    images: Tensor,
    settings: AuditSettings,
    with_classes: bool,
) -> list[tuple[Tensor, Tensor | None, np.ndarray, np.ndarray]]:
    """Pass 2 per tile: ``(N_S, N_S^c or None, centre rows, centre cols)``."""
    out = []
    for image in images:
        patches, rows, cols = tile_samples(image, settings.stride, settings.context)
        soft, per_class = score_patches(
            accumulator,
            segmenter.model,
            patches,
            settings.jacobian,
            batch_size=settings.batch_size,
            with_classes=with_classes,
        )
        out.append((soft.cpu(), None if per_class is None else per_class.cpu(), rows, cols))
    return out


def auroc(scores: np.ndarray, positives: np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` for the boolean ``positives`` (NaN if one class)."""
    positives = np.asarray(positives, dtype=bool)
    if positives.all() or not positives.any():
        return float("nan")
    return float(roc_auc_score(positives, scores))


def decile_error_rates(soft: np.ndarray, errors: np.ndarray) -> tuple[float, float]:
    """Error rate among samples in the lowest and in the highest ``N_S`` decile (A2, spec §5.a)."""
    low, high = np.quantile(soft, [0.1, 0.9])
    return float(errors[soft <= low].mean()), float(errors[soft >= high].mean())


def _check_schema(schema: ClassSchema, classes: int) -> None:
    if schema.ids != tuple(range(classes)):
        raise ValueError(
            f"schema {schema.name!r} has ids {schema.ids}; the network predicts classes 0..{classes - 1}"
        )


def _write_density_maps(
    tiles: TileSet, scores: Sequence[tuple], out_dir: Path, stride: int
) -> list[dict[str, object]]:
    """One ``log N_S`` GeoTIFF per tile; returns the per-tile rows (without error rates)."""
    rows = []
    for (_, row), (soft, _, centre_rows, centre_cols) in zip(tiles.table.iterrows(), scores):
        log_density = density_grid(soft, len(centre_rows), len(centre_cols))
        path = out_dir / tiles.index.meta.name / f"{row['id']}_{row['season']}.tif"
        grid = coarse_grid(tiles.index.grid(row), stride, len(centre_rows), len(centre_cols))
        write_geotiff(path, np.nan_to_num(log_density, nan=-9999.0), grid, ["log_density"], nodata=-9999.0)
        rows.append(
            {
                "dataset": tiles.index.meta.name,
                "id": row["id"],
                "season": row["season"],
                "split": row["split"],
                "density_map": str(path),
                **density_summary(log_density),
            }
        )
    return rows


def _centre_values(probabilities: Tensor, scores: Sequence[tuple]) -> list[Tensor]:
    return [p[:, rows][:, :, cols].reshape(p.shape[0], -1).T for p, (_, _, rows, cols) in zip(probabilities, scores)]


def run_density_audit(
    segmenter: Segmenter,
    train_root: str | os.PathLike[str],
    heldout_root: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    tables: dict[str, str | os.PathLike[str]],
    figures: dict[str, str | os.PathLike[str]],
    settings: AuditSettings = AuditSettings(),
    label_layer: str = "dw",
    truth_layer: str = "truth",
    image_layer: str = "s2",
    heldout_split: str | None = None,
) -> pd.DataFrame:
    """The whole audit of ``segmenter``; ``tables`` has keys ``summary_csv``, ``summary_md``,
    ``tiles``, ``samples``; ``figures`` has ``tiles`` and ``deciles``.  Returns the summary table."""
    out_dir = Path(out_dir)
    train = load_tiles(train_root, [image_layer, label_layer, truth_layer])
    heldout = load_tiles(heldout_root, [image_layer, truth_layer], heldout_split)
    schema = load_schema(train.index.meta.layers[label_layer].schema or "")
    _check_schema(schema, segmenter.classes)
    x_train = segmenter.normaliser(train.layers[image_layer])
    x_heldout = segmenter.normaliser(heldout.layers[image_layer])
    accumulator = build_accumulator(segmenter, x_train, train.layers[label_layer], settings)
    log.info("pass 1: %d samples, %d eigenvalues clamped", accumulator.count, accumulator.n_clamped)
    train_scores = score_tiles(accumulator, segmenter, x_train, settings, with_classes=True)
    heldout_scores = score_tiles(accumulator, segmenter, x_heldout, settings, with_classes=False)

    samples = _training_samples(segmenter, train, train_scores, label_layer, truth_layer, image_layer)
    support = torch.tensor(samples["label_support"].to_numpy())
    soft = torch.tensor(samples["N_S"].to_numpy())
    flags = audit_flags(soft, support, soft)
    samples["unreliable"] = flags["unreliable"].numpy()
    samples["suspicious_label"] = flags["suspicious_label"].numpy()

    heldout_soft, heldout_errors = _heldout_errors(segmenter, heldout, heldout_scores, truth_layer, image_layer)
    tile_rows = _write_density_maps(train, train_scores, out_dir, settings.stride)
    tile_rows += _write_density_maps(heldout, heldout_scores, out_dir, settings.stride)
    tile_table = pd.DataFrame(tile_rows)
    n_train = len(train.rows)
    label_errors = samples.groupby(["id", "season"], sort=False)["label_wrong"].mean().to_numpy()
    tile_table["label_error_rate"] = [*label_errors, *[np.nan] * len(heldout_errors)]
    tile_table["prediction_error_rate"] = [*[np.nan] * n_train, *[e.mean() for e in heldout_errors]]
    tile_table["unreliable"] = [
        *samples.groupby(["id", "season"], sort=False)["unreliable"].sum(),
        *[int(audit_flags(s, None, soft)["unreliable"].sum()) for s, *_ in heldout_scores],
    ]

    summary = _summary(samples, np.concatenate(heldout_soft), np.concatenate(heldout_errors), train, heldout)
    _write_outputs(summary, tile_table, samples, tables)
    plot_audit_tiles(
        train, samples, train_scores, schema, settings.figure_tiles, figures["tiles"], label_layer, image_layer
    )
    plot_density_deciles(np.concatenate(heldout_soft), np.concatenate(heldout_errors), figures["deciles"])
    return summary


def _training_samples(
    segmenter: Segmenter, train: TileSet, scores: Sequence[tuple], label_layer: str, truth_layer: str, image_layer: str
) -> pd.DataFrame:
    """One row per training sample: position, label, truth, ``N_S``, support, ``p^(y~)``."""
    probabilities = predict_probabilities(segmenter, train.layers[image_layer])
    centre_probabilities = _centre_values(probabilities, scores)
    frames = []
    for t, ((_, row), (soft, per_class, rows, cols), prob) in enumerate(
        zip(train.table.iterrows(), scores, centre_probabilities)
    ):
        rr, cc = np.meshgrid(rows, cols, indexing="ij")
        labels = train.layers[label_layer][t][rr, cc].reshape(-1).astype(np.int64)
        truth = train.layers[truth_layer][t][rr, cc].reshape(-1).astype(np.int64)
        support = label_support(soft, per_class, torch.as_tensor(labels))
        labelled = labels != 255
        p_label = np.full(len(labels), np.nan)
        p_label[labelled] = prob.numpy()[np.flatnonzero(labelled), labels[labelled]]
        frames.append(
            pd.DataFrame(
                {
                    "id": row["id"],
                    "season": row["season"],
                    "row": rr.reshape(-1),
                    "col": cc.reshape(-1),
                    "label": labels,
                    "truth": truth,
                    "label_wrong": (labels != truth) & labelled,
                    "N_S": soft.double().numpy(),
                    "label_support": support.double().numpy(),
                    "p_label": p_label,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def _heldout_errors(
    segmenter: Segmenter, heldout: TileSet, scores: Sequence[tuple], truth_layer: str, image_layer: str
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per held-out tile: ``N_S`` and whether the prediction at each centre is wrong vs truth."""
    predicted = predict_probabilities(segmenter, heldout.layers[image_layer]).argmax(dim=1).numpy()
    softs, errors = [], []
    for t, (soft, _, rows, cols) in enumerate(scores):
        truth = heldout.layers[truth_layer][t][np.ix_(rows, cols)].reshape(-1)
        errors.append(predicted[t][np.ix_(rows, cols)].reshape(-1) != truth)
        softs.append(soft.double().numpy())
    return softs, errors


def _summary(
    samples: pd.DataFrame, heldout_soft: np.ndarray, heldout_errors: np.ndarray, train: TileSet, heldout: TileSet
) -> pd.DataFrame:
    """Acceptance measures A2 and A3 (spec §5.a) with their targets, and flag statistics."""
    low, high = decile_error_rates(heldout_soft, heldout_errors)
    ratio = low / high if high > 0 else float("inf")
    scored = samples[np.isfinite(samples["label_support"]) & np.isfinite(samples["p_label"])]
    wrong = scored["label_wrong"].to_numpy()
    auc_support = auroc(1 - scored["label_support"].to_numpy(), wrong)
    auc_baseline = auroc(1 - scored["p_label"].to_numpy(), wrong)
    suspicious = samples["suspicious_label"].to_numpy(bool)
    rows = [
        ("A2 held-out error rate, lowest N_S decile", low, "", ""),
        ("A2 held-out error rate, highest N_S decile", high, "", ""),
        ("A2 ratio lowest / highest decile", ratio, ">= 1.5", ratio >= 1.5),
        ("A3 AUROC of 1 - label support for wrong label", auc_support, ">= 0.75", auc_support >= 0.75),
        ("A3 baseline AUROC of 1 - p(noisy label)", auc_baseline, "", ""),
        ("training samples", len(samples), "", ""),
        ("training samples with a wrong label (share)", float(samples["label_wrong"].mean()), "", ""),
        ("held-out samples", len(heldout_soft), "", ""),
        ("suspicious_label flags", int(suspicious.sum()), "", ""),
        ("suspicious_label precision (flagged labels that are wrong)",
         float(samples.loc[suspicious, "label_wrong"].mean()) if suspicious.any() else float("nan"), "", ""),
        ("unreliable flags (training samples)", int(samples["unreliable"].sum()), "", ""),
    ]
    table = pd.DataFrame(rows, columns=["measure", "value", "target", "meets_target"])
    table["training_set"] = train.index.meta.name
    table["heldout_set"] = heldout.index.meta.name
    return table


def _write_outputs(
    summary: pd.DataFrame, tiles: pd.DataFrame, samples: pd.DataFrame, tables: dict[str, str | os.PathLike[str]]
) -> None:
    for key, frame in (("tiles", tiles), ("samples", samples)):
        with atomic_path(tables[key]) as tmp:
            frame.to_csv(tmp, index=False)
    write_table(
        summary,
        tables["summary_csv"],
        tables["summary_md"],
        "Density audit (network input similarity, spec §5.a)",
        notes=[
            SYNTHETIC_NOTE,
            "A2: error of the network's prediction vs the truth on held-out tiles, by soft neighbour "
            "count N_S decile. A3: ranking of wrong training labels by 1 - label support, next to "
            "the 1 - p(noisy label) baseline. Targets are the spec's proposals; values are measured.",
        ],
    )
