"""Entry points of the similarity rules (rules/similarity.smk): config sections in, files out.

Each takes the plain, schema-validated config values its rule passes as params, so the workflow
scripts only unpack ``snakemake``.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

import torch

from eolabels.atomic import atomic_path
from eolabels.report.tables import is_synthetic
from eolabels.similarity.audit import AuditSettings, run_density_audit, season_mask, split_by_season
from eolabels.similarity.segmentation import (
    TrainSettings,
    evaluate_segmenter,
    load_segmenter,
    train_segmenter,
)
from eolabels.similarity.selfdenoise import DenoiseSettings, label_accuracy, run_self_denoising
from eolabels.similarity.tiles import load_tiles
from eolabels.similarity.toy import ToyStudy, run_toy_study
from eolabels.tables import load_schema

log = logging.getLogger(__name__)
PathLike = str | os.PathLike[str]


def _threads(threads: int) -> None:
    torch.set_num_threads(max(1, threads))


def train_stage(
    dataset_root: PathLike,
    heldout_root: PathLike,
    model_path: PathLike,
    metrics_path: PathLike,
    train: dict[str, Any],
    seed: int,
    heldout_split: str | None = None,
    threads: int = 1,
    device: str = "cpu",
    withheld_season: str | None = None,
) -> dict[str, float]:
    """Train the U-Net on the dataset's noisy labels (its ``label`` layer, S2 image); score it against
    the held-out truth.

    ``withheld_season``: the tiles of that season are left out of training (acceptance A2 of spec
    §5.a; the audit leaves the same tiles out of its pass 1)."""
    _threads(threads)
    tiles, withheld = split_by_season(load_tiles(dataset_root, ["image", "label", "truth"]), withheld_season)
    heldout = load_tiles(heldout_root, ["image", "truth"], heldout_split)
    classes = load_schema(tiles.spec("label").schema or "").num_classes
    segmenter = train_segmenter(
        tiles.layers["image"], tiles.layers["label"], classes, TrainSettings(**train), seed, device=device
    )
    segmenter.save(model_path)
    heldout_scores = evaluate_segmenter(segmenter, heldout.layers["image"], heldout.layers["truth"])
    train_scores = evaluate_segmenter(segmenter, tiles.layers["image"], tiles.layers["truth"])
    metrics = {
        "synthetic": is_synthetic(tiles.index.meta.source),
        "data": tiles.index.meta.source,
        "withheld_season": withheld_season,
        "training_tiles": len(tiles.rows),
        "withheld_tiles": 0 if withheld is None else len(withheld.rows),
        "training_label_accuracy": label_accuracy(tiles.layers["truth"], tiles.layers["label"], classes),
        "training_truth_OA": train_scores["OA"],
        "heldout_OA": heldout_scores["OA"],
        "heldout_mIoU": heldout_scores["mIoU"],
    }
    if withheld_season is not None:  # held-out scores above mix in the season never trained on
        in_season = season_mask(heldout, withheld_season, tiles.index.meta.seasons)
        for name, keep in (("trained_seasons", ~in_season), ("withheld_season", in_season)):
            if keep.any():
                scores = evaluate_segmenter(segmenter, heldout.layers["image"][keep], heldout.layers["truth"][keep])
                metrics[f"heldout_OA_{name}"] = scores["OA"]
                metrics[f"heldout_mIoU_{name}"] = scores["mIoU"]
    log.info("trained: %s", metrics)
    with atomic_path(metrics_path) as tmp:
        tmp.write_text(json.dumps(metrics, indent=2))
    return metrics


def audit_stage(
    model_path: PathLike,
    dataset_root: PathLike,
    heldout_root: PathLike,
    density_dir: PathLike,
    tables: dict[str, PathLike],
    figures: dict[str, PathLike],
    audit: dict[str, Any],
    heldout_split: str | None = None,
    threads: int = 1,
    device: str = "cpu",
    seed: int = 0,
) -> None:
    """The density audit of spec §5.a over the checkpoint at ``model_path``; ``seed`` draws the
    Jacobian sketch and random projection mask (``AuditSettings.seed``)."""
    _threads(threads)
    summary = run_density_audit(
        load_segmenter(model_path, device), dataset_root, heldout_root, density_dir, tables, figures,
        AuditSettings(**{**audit, "seed": seed}), heldout_split=heldout_split,
    )
    log.info("density audit:\n%s", summary.to_string())


def denoise_stage(
    dataset_root: PathLike,
    heldout_root: PathLike,
    rounds_dir: PathLike,
    export_root: PathLike,
    tables: dict[str, PathLike],
    figure: PathLike,
    train: dict[str, Any],
    denoise: dict[str, Any],
    seed: int,
    heldout_split: str | None = None,
    threads: int = 1,
    device: str = "cpu",
) -> None:
    """Self-denoising rounds of spec §5.b and the export of the last round's labels."""
    _threads(threads)
    table = run_self_denoising(
        dataset_root, heldout_root, rounds_dir, export_root, tables, figure,
        TrainSettings(**train), DenoiseSettings(**denoise), seed, heldout_split, device=device,
    )
    log.info("self-denoising:\n%s", table.to_string())


def toy_stage(
    toy: dict[str, Any], seed: int, table_csv: PathLike, table_md: PathLike, figures: dict[str, PathLike],
    threads: int = 1,
) -> None:
    """The paper's toy of spec §2.4."""
    _threads(threads)
    values = dict(toy)
    for key in ("frequencies", "triangular_frequencies"):
        values[key] = tuple(values.get(key, ()))
    run_toy_study(ToyStudy(**values), seed, table_csv, table_md, figures)
