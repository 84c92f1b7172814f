"""The density audit stage (spec netsimilarity.md §5.a) over a trained segmentation network.

Pass 1 over training samples (centre pixels on a stride-s grid of every training tile, a context
window around each) builds ``S_train`` and the class accumulators ``S_c`` from the training labels;
pass 2 scores the training samples (``N_S``, ``N_S^c``, label support, flags) and held-out tiles
(``N_S``).  Outputs: one coarse ``log N_S`` GeoTIFF per tile, a per-tile table, a per-sample table,
the acceptance measures A2 and A3 against the truth, and figures.

Any segmentation network works: ``run_density_audit`` takes a ``segmentation.Network`` (the network,
its input normalisation, its class count); ``stages.audit_stage`` loads one saved by ``Segmenter.save``,
``pretrained`` builds one from a CromSS checkpoint.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Collection, Sequence
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
from eolabels.similarity.jacobian import PROJECTIONS, JacobianConfig
from eolabels.report.tables import source_tag, write_table
from eolabels.similarity.report import tile_sets_source
from eolabels.similarity.segmentation import Network, predict_probabilities
from eolabels.similarity.tiles import TileSet, load_tiles
from eolabels.tables import ClassSchema, load_schema

log = logging.getLogger(__name__)
AUDIT_PROJECTIONS = ("centred", *PROJECTIONS)


@dataclass(frozen=True)
class AuditSettings:
    """Sampling grid (stride, context window) and Jacobian options of the audit (spec §5.a).

    ``projection``: the differentiated output (spec §1.3.5): ``"centred"`` logits (d = C - 1) or a
    scalar ``"posnegflat"`` (class ``projection_class``) / ``"random"`` projection of the
    log-softmax.  ``seed`` draws the Johnson–Lindenstrauss sketch and the random mask (the workflow
    passes ``config.seed``).  ``withheld_season``: a season left out of the training tiles (the
    network's and pass 1's), whose held-out tiles A2 compares with those of the trained seasons;
    ``None`` uses every tile.
    """

    subset: str = "last_block+head"
    stride: int = 16
    context: int = 64
    sketch_dim: int | None = None
    batch_size: int = 64
    figure_tiles: int = 3
    projection: str = "centred"
    projection_class: int = 0
    seed: int = 0
    withheld_season: str | None = None

    def __post_init__(self) -> None:
        if self.projection not in AUDIT_PROJECTIONS:
            raise ValueError(f"unknown audit projection {self.projection!r}; choose one of {AUDIT_PROJECTIONS}")

    @property
    def jacobian(self) -> JacobianConfig:
        return JacobianConfig(
            subset=self.subset,
            pixel="centre",
            centred=True,
            sketch_dim=self.sketch_dim,
            sketch_seed=self.seed,
            projection=None if self.projection == "centred" else self.projection,
            projection_class=self.projection_class,
            projection_seed=self.seed,
        )


def tile_seasons(tiles: TileSet, names: Sequence[str] = ()) -> list[str]:
    """Season name of every tile.  The index stores the season's position in the dataset's
    ``meta.seasons``; a dataset that lists no season names (the single-date synthetic ``dw`` tiles
    store the world's season position all the same) is read with ``names``, e.g. those of the
    training set."""
    names = tiles.index.meta.seasons or tuple(names)
    out = []
    for value in tiles.table["season"]:
        text = str(value).strip()
        position = int(text) if text.lstrip("-").isdigit() else None
        out.append(names[position] if position is not None and 0 <= position < len(names) else text)
    return out


def season_mask(tiles: TileSet, season: str, names: Sequence[str] = ()) -> np.ndarray:
    """Which tiles are of ``season`` (season names as in ``tile_seasons``); a name the dataset does
    not know fails naming the dataset."""
    seasons = tile_seasons(tiles, names)
    known = tiles.index.meta.seasons or tuple(names) or tuple(sorted(set(seasons)))
    if season not in known:
        raise ValueError(f"{tiles.index.root}: season {season!r} is not one of its seasons {list(known)}")
    return np.array([name == season for name in seasons], dtype=bool)


def split_tiles(tiles: TileSet, leave_out: np.ndarray) -> tuple[TileSet, TileSet | None]:
    """``(tiles kept, tiles left out)`` by a boolean mask; the second is ``None`` when none is left
    out.  Leaving out every tile fails naming the dataset."""
    kept, left = np.flatnonzero(~leave_out).tolist(), np.flatnonzero(leave_out).tolist()
    if not kept:
        raise ValueError(f"{tiles.index.root}: every tile is left out of training; none is left to train on")
    return tiles.subset(kept), tiles.subset(left) if left else None


def split_by_season(tiles: TileSet, season: str | None) -> tuple[TileSet, TileSet | None]:
    """``(tiles of the other seasons, tiles of season)``; the second is ``None`` when no tile is of
    that season or ``season`` is ``None`` (then the first is ``tiles``).  An unknown season name,
    or one that leaves no other tile, fails naming the dataset."""
    if season is None:
        return tiles, None
    mask = season_mask(tiles, season)
    if mask.all():
        raise ValueError(
            f"{tiles.index.root}: every tile is of season {season!r}; none is left to train on "
            "(withhold another season or none)"
        )
    return split_tiles(tiles, mask)


def withheld_season_test(withheld: Sequence[np.ndarray], trained: Sequence[np.ndarray]) -> dict[str, float]:
    """A2, second half (spec §5.a): are ``N_S`` lower on held-out tiles of the season withheld from
    training than on held-out tiles of the trained seasons?  One-sided Mann–Whitney U
    (``alternative="less"``, U of the withheld group) on two units:

    * ``tile_*``: one value per tile, its median ``N_S`` (the spec's "median N_S" of tiles; the
      samples of one tile are not independent, so this is the test the target applies to), with
      ``tile_min_p`` = 1 / C(n_w + n_t, n_w), the smallest p the exact test can reach with these
      tile counts;
    * ``sample_*``: every sample of the tiles pooled (reported; it overstates the evidence).

    Each argument holds one array of ``N_S`` per tile; NaN where a group is empty.
    """
    from scipy.stats import mannwhitneyu

    tile_w = np.array([np.median(s) for s in withheld])
    tile_t = np.array([np.median(s) for s in trained])
    out: dict[str, float] = {"tiles_withheld": len(tile_w), "tiles_trained": len(tile_t)}
    nan = float("nan")
    if len(tile_w) == 0 or len(tile_t) == 0:
        for unit in ("tile", "sample"):
            out.update({f"{unit}_median_withheld": nan, f"{unit}_median_trained": nan, f"{unit}_U": nan, f"{unit}_p": nan})
        out["tile_min_p"] = nan
        return out
    sample_w, sample_t = np.concatenate(withheld), np.concatenate(trained)
    for unit, w, t in (("tile", tile_w, tile_t), ("sample", sample_w, sample_t)):
        test = mannwhitneyu(w, t, alternative="less")
        out.update(
            {
                f"{unit}_median_withheld": float(np.median(w)),
                f"{unit}_median_trained": float(np.median(t)),
                f"{unit}_U": float(test.statistic),
                f"{unit}_p": float(test.pvalue),
            }
        )
    out["tile_min_p"] = 1.0 / math.comb(len(tile_w) + len(tile_t), len(tile_w))
    return out


def coarse_grid(grid: GridSpec, stride: int, n_rows: int, n_cols: int) -> GridSpec:
    """The grid of a density map: the tile's transform with pixels ``stride`` times larger."""
    a, b, c, d, e, f = grid.transform
    return GridSpec(grid.crs, (a * stride, b * stride, c, d * stride, e * stride, f), n_rows, n_cols)


def tile_samples(image: Tensor, stride: int, context: int) -> tuple[Tensor, np.ndarray, np.ndarray]:
    """Context windows at the grid centres of one normalised tile, and the centres' rows/cols."""
    rows, cols = grid_centres(image.shape[1], image.shape[2], stride)
    return extract_patches(image, rows, cols, context), rows, cols


def build_accumulator(
    segmenter: Network,
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
    segmenter: Network,
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


def within_class_decile_error_rates(
    soft: np.ndarray, errors: np.ndarray, classes: np.ndarray, min_samples: int = 20
) -> tuple[float, float]:
    """A2 with the class confound removed (a diagnostic, not the spec's measure): the lowest and the
    highest ``N_S`` decile taken within each predicted class with at least ``min_samples`` samples,
    pooled over classes; returns their error rates.  Large classes have large soft counts, so the
    plain deciles also compare classes, which this leaves out."""
    low, high = [], []
    for c in np.unique(classes):
        members = classes == c
        if members.sum() < min_samples:
            continue
        lo, hi = np.quantile(soft[members], [0.1, 0.9])
        low.append(errors[members & (soft <= lo)])
        high.append(errors[members & (soft >= hi)])
    if not low:
        return float("nan"), float("nan")
    return float(np.concatenate(low).mean()), float(np.concatenate(high).mean())


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
    segmenter: Network,
    train_root: str | os.PathLike[str],
    heldout_root: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    tables: dict[str, str | os.PathLike[str]],
    figures: dict[str, str | os.PathLike[str]],
    settings: AuditSettings = AuditSettings(),
    modality: str = "s2",
    heldout_split: str | None = None,
    exclude_ids: Collection[str] = (),
) -> pd.DataFrame:
    """The whole audit of ``segmenter``; ``tables`` has keys ``summary_csv``, ``summary_md``,
    ``tiles``, ``samples``; ``figures`` has ``tiles`` and ``deciles``.  Returns the summary table.
    The network reads the image of ``modality``; the training set's ``label`` layer is audited and
    scored with its ``truth``.

    With ``settings.withheld_season``, the training tiles of that season are left out of pass 1
    (as they were left out of the network's training, ``stages.train_stage``) and scored like
    held-out tiles; A2 then also compares held-out tiles of that season with the others.
    ``exclude_ids``: locations of the training set the network never trained on (e.g. a pretraining's
    validation split); like a withheld season they stay out of pass 1 and are only scored."""
    out_dir = Path(out_dir)
    season = settings.withheld_season
    loaded = load_tiles(train_root, ["image", "label", "truth"], modality=modality)
    in_season = np.zeros(len(loaded.rows), bool) if season is None else season_mask(loaded, season)
    excluded = loaded.table["id"].astype(str).isin({str(i) for i in exclude_ids}).to_numpy()
    train, withheld_train = split_tiles(loaded, in_season | excluded)
    withheld_in_season = in_season[in_season | excluded]
    heldout = load_tiles(heldout_root, ["image", "truth"], heldout_split, modality=modality)
    heldout_withheld = (
        np.zeros(len(heldout.rows), bool)
        if season is None
        else season_mask(heldout, season, train.index.meta.seasons)
    )
    schema = load_schema(train.spec("label").schema or "")
    _check_schema(schema, segmenter.classes)
    x_train = segmenter.normaliser(train.layers["image"])
    x_heldout = segmenter.normaliser(heldout.layers["image"])
    accumulator = build_accumulator(segmenter, x_train, train.layers["label"], settings)
    log.info("pass 1: %d samples, %d eigenvalues clamped", accumulator.count, accumulator.n_clamped)
    train_scores = score_tiles(accumulator, segmenter, x_train, settings, with_classes=True)
    heldout_scores = score_tiles(accumulator, segmenter, x_heldout, settings, with_classes=False)
    withheld_scores = (
        []
        if withheld_train is None
        else score_tiles(
            accumulator, segmenter, segmenter.normaliser(withheld_train.layers["image"]), settings, False
        )
    )

    samples = _training_samples(segmenter, train, train_scores)
    support = torch.tensor(samples["label_support"].to_numpy())
    soft = torch.tensor(samples["N_S"].to_numpy())
    flags = audit_flags(soft, support, soft)
    samples["unreliable"] = flags["unreliable"].numpy()
    samples["suspicious_label"] = flags["suspicious_label"].numpy()

    heldout_soft, heldout_errors, heldout_classes = _heldout_errors(segmenter, heldout, heldout_scores)
    tile_rows = _write_density_maps(train, train_scores, out_dir, settings.stride)
    if withheld_train is not None:
        tile_rows += _write_density_maps(withheld_train, withheld_scores, out_dir, settings.stride)
    tile_rows += _write_density_maps(heldout, heldout_scores, out_dir, settings.stride)
    tile_table = pd.DataFrame(tile_rows)
    n_train, n_withheld = len(train.rows), len(withheld_scores)
    label_errors = samples.groupby(["id", "season"], sort=False)["label_wrong"].mean().to_numpy()
    tile_table["label_error_rate"] = [*label_errors, *[np.nan] * (n_withheld + len(heldout_errors))]
    tile_table["prediction_error_rate"] = [*[np.nan] * (n_train + n_withheld), *[e.mean() for e in heldout_errors]]
    tile_table["unreliable"] = [
        *samples.groupby(["id", "season"], sort=False)["unreliable"].sum(),
        *[int(audit_flags(s, None, soft)["unreliable"].sum()) for s, *_ in (*withheld_scores, *heldout_scores)],
    ]
    tile_table["withheld_season"] = [*[False] * n_train, *withheld_in_season, *heldout_withheld]
    tile_table["in_pass1"] = [*[True] * n_train, *[False] * (n_withheld + len(heldout_errors))]

    season_groups = (
        [s for s, w in zip(heldout_soft, heldout_withheld) if w],
        [s for s, w in zip(heldout_soft, heldout_withheld) if not w],
    )
    season_test = None if season is None else withheld_season_test(*season_groups)
    if season_test is not None:
        log.info("A2 withheld season %r: %s", season, season_test)
        if not (season_test["tiles_withheld"] and season_test["tiles_trained"]):
            log.warning("A2 withheld season %r: a group has no held-out tile; the test is not measured", season)
    source = tile_sets_source(train, heldout)
    summary = _summary(
        samples, heldout_soft, heldout_errors, train, heldout, season, season_test, heldout_withheld,
        np.concatenate(heldout_classes),
    )
    summary = _write_outputs(summary, tile_table, samples, tables, source)
    plot_audit_tiles(train, samples, train_scores, schema, settings.figure_tiles, figures["tiles"])
    plot_density_deciles(
        np.concatenate(heldout_soft),
        np.concatenate(heldout_errors),
        figures["deciles"],
        source=source,
        season=season,
        season_groups=None if season is None else season_groups,
    )
    return summary


def _training_samples(
    segmenter: Network, train: TileSet, scores: Sequence[tuple]
) -> pd.DataFrame:
    """One row per training sample: position, label, truth, ``N_S``, support, ``p^(y~)``."""
    probabilities = predict_probabilities(segmenter, train.layers["image"])
    centre_probabilities = _centre_values(probabilities, scores)
    frames = []
    for t, ((_, row), (soft, per_class, rows, cols), prob) in enumerate(
        zip(train.table.iterrows(), scores, centre_probabilities)
    ):
        rr, cc = np.meshgrid(rows, cols, indexing="ij")
        labels = train.layers["label"][t][rr, cc].reshape(-1).astype(np.int64)
        truth = train.layers["truth"][t][rr, cc].reshape(-1).astype(np.int64)
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
    segmenter: Network, heldout: TileSet, scores: Sequence[tuple]
) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """Per held-out tile: ``N_S``, whether the prediction at each centre is wrong vs truth, and the
    predicted class there."""
    predicted = predict_probabilities(segmenter, heldout.layers["image"]).argmax(dim=1).numpy()
    softs, errors, classes = [], [], []
    for t, (soft, _, rows, cols) in enumerate(scores):
        truth = heldout.layers["truth"][t][np.ix_(rows, cols)].reshape(-1)
        classes.append(predicted[t][np.ix_(rows, cols)].reshape(-1))
        errors.append(classes[-1] != truth)
        softs.append(soft.double().numpy())
    return softs, errors, classes


def _summary(
    samples: pd.DataFrame,
    heldout_soft: Sequence[np.ndarray],
    heldout_errors: Sequence[np.ndarray],
    train: TileSet,
    heldout: TileSet,
    season: str | None = None,
    season_test: dict[str, float] | None = None,
    heldout_withheld: np.ndarray | None = None,
    heldout_classes: np.ndarray | None = None,
) -> pd.DataFrame:
    """Acceptance measures A2 and A3 (spec §5.a) with their targets, and flag statistics; with a
    withheld season, A2's season comparison (``withheld_season_test``); with the predicted classes,
    the within-class decile diagnostic."""
    all_soft, all_errors = np.concatenate(heldout_soft), np.concatenate(heldout_errors)
    low, high = decile_error_rates(all_soft, all_errors)
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
    ]
    if heldout_classes is not None:
        class_low, class_high = within_class_decile_error_rates(all_soft, all_errors, heldout_classes)
        rows.append(("A2 ratio lowest / highest decile within each predicted class (diagnostic)",
                     class_low / class_high if class_high > 0 else float("inf"), "", ""))
    if season is not None and season_test is not None and heldout_withheld is not None:
        rows += _season_rows(season, season_test, heldout_soft, heldout_errors, heldout_withheld)
    rows += [
        ("A3 AUROC of 1 - label support for wrong label", auc_support, ">= 0.75", auc_support >= 0.75),
        ("A3 baseline AUROC of 1 - p(noisy label)", auc_baseline, "", ""),
        ("training samples", len(samples), "", ""),
        ("training samples with a wrong label (share)", float(samples["label_wrong"].mean()), "", ""),
        ("held-out samples", len(all_soft), "", ""),
        ("suspicious_label flags", int(suspicious.sum()), "", ""),
        ("suspicious_label precision (flagged labels that are wrong)",
         float(samples.loc[suspicious, "label_wrong"].mean()) if suspicious.any() else float("nan"), "", ""),
        ("unreliable flags (training samples)", int(samples["unreliable"].sum()), "", ""),
    ]
    table = pd.DataFrame(rows, columns=["measure", "value", "target", "meets_target"])
    table["training_set"] = train.index.meta.name
    table["heldout_set"] = heldout.index.meta.name
    return table


def _season_rows(
    season: str,
    test: dict[str, float],
    heldout_soft: Sequence[np.ndarray],
    heldout_errors: Sequence[np.ndarray],
    heldout_withheld: np.ndarray,
) -> list[tuple[str, float, str, object]]:
    """Rows of A2's withheld-season comparison; the target applies to the per-tile test."""
    trained = [i for i, w in enumerate(heldout_withheld) if not w]
    if trained:
        low, high = decile_error_rates(
            np.concatenate([heldout_soft[i] for i in trained]), np.concatenate([heldout_errors[i] for i in trained])
        )
        trained_ratio = low / high if high > 0 else float("inf")
    else:
        trained_ratio = float("nan")
    p = test["tile_p"]
    return [
        ("A2 ratio lowest / highest decile, held-out tiles of the trained seasons", trained_ratio, "", ""),
        (f"A2 held-out tiles of the withheld season ({season})", test["tiles_withheld"], "", ""),
        ("A2 held-out tiles of the trained seasons", test["tiles_trained"], "", ""),
        (f"A2 median of per-tile median N_S, withheld season ({season})", test["tile_median_withheld"], "", ""),
        ("A2 median of per-tile median N_S, trained seasons", test["tile_median_trained"], "", ""),
        ("A2 Mann-Whitney U (per-tile median N_S, withheld < trained)", test["tile_U"], "", ""),
        ("A2 one-sided Mann-Whitney p (per-tile median N_S, withheld < trained)", p, "< 0.01",
         bool(p < 0.01) if np.isfinite(p) else ""),  # not measured: a group without held-out tiles
        ("A2 smallest p the exact per-tile test can reach with these tile counts", test["tile_min_p"], "", ""),
        (f"A2 median N_S per sample, withheld season ({season})", test["sample_median_withheld"], "", ""),
        ("A2 median N_S per sample, trained seasons", test["sample_median_trained"], "", ""),
        ("A2 Mann-Whitney U (per sample, pooled; samples of a tile are not independent)", test["sample_U"], "", ""),
        ("A2 one-sided Mann-Whitney p (per sample, pooled)", test["sample_p"], "", ""),
    ]


def _write_outputs(
    summary: pd.DataFrame,
    tiles: pd.DataFrame,
    samples: pd.DataFrame,
    tables: dict[str, str | os.PathLike[str]],
    source: str,
) -> pd.DataFrame:
    """The per-tile and per-sample tables, and the summary with its ``data`` column and banner
    naming ``source`` (``eolabels.report.tables``); returns the summary as written."""
    for key, frame in (("tiles", tiles), ("samples", samples)):
        with atomic_path(tables[key]) as tmp:
            frame.to_csv(tmp, index=False)
    return write_table(
        summary,
        tables["summary_csv"],
        tables["summary_md"],
        f"Density audit (network input similarity, spec §5.a) — {source_tag(source)}",
        [
            "A2: error of the network's prediction vs the truth on held-out tiles, by soft neighbour "
            "count N_S decile; with a withheld season (left out of the network's training and of pass 1), "
            "a one-sided Mann-Whitney test of the per-tile median N_S of held-out tiles of that season "
            "against those of the trained seasons (the target applies to it; the per-sample test is "
            "reported but overstates the evidence). A3: ranking of wrong training labels by 1 - label "
            "support, next to the 1 - p(noisy label) baseline. Targets are the spec's proposals; values "
            "are measured.",
        ],
        source=source,
    )
