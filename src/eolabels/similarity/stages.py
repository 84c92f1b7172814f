"""Entry points of the similarity rules (rules/similarity.smk): config sections in, files out.

Each takes keyword arguments only: the plain, schema-validated config values its rule passes as
params, and a small frozen dataclass of output paths that the workflow script fills from the rule's
named outputs, so the scripts only unpack ``snakemake``.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch

from eolabels.atomic import atomic_path
from eolabels.cromss.pretraining import BAND_SETS
from eolabels.cromss.train import VARIANTS
from eolabels.cromss.wiring import SchemaChoices, split_run
from eolabels.report.tables import is_synthetic
from eolabels.settings import from_section
from eolabels.similarity.audit import AuditSettings, run_density_audit, season_mask, split_by_season
from eolabels.similarity.pretrained import audit_pretrained, load_pretrained_segmenter
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


@dataclass(frozen=True)
class TrainOutputs:
    """Files of rule ``train_segmenter``: the network and its scores."""

    model: PathLike
    metrics: PathLike


@dataclass(frozen=True)
class AuditOutputs:
    """Files of a density-audit rule (``audit_density``, ``audit_pretrained``), named as its outputs."""

    density: PathLike  # directory of per-tile density GeoTIFFs
    table: PathLike
    markdown: PathLike
    tiles: PathLike
    samples: PathLike
    figure: PathLike
    deciles: PathLike

    def tables(self) -> dict[str, PathLike]:
        return {"summary_csv": self.table, "summary_md": self.markdown, "tiles": self.tiles, "samples": self.samples}

    def figures(self) -> dict[str, PathLike]:
        return {"tiles": self.figure, "deciles": self.deciles}


@dataclass(frozen=True)
class DenoiseOutputs:
    """Files of rule ``denoise_labels``; ``dataset`` is the directory of the exported last round."""

    rounds: PathLike
    details: PathLike
    table: PathLike
    markdown: PathLike
    figure: PathLike
    dataset: PathLike


@dataclass(frozen=True)
class ToyOutputs:
    """Files of rule ``fit_toys``."""

    table: PathLike
    markdown: PathLike
    soft: PathLike
    hard: PathLike


def train_stage(
    *,
    dataset_root: PathLike,
    heldout_root: PathLike,
    outputs: TrainOutputs,
    train: dict[str, Any],
    seed: int,
    heldout_split: str | None,
    withheld_season: str | None,
    threads: int = 1,
    device: str = "cpu",
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
        tiles.layers["image"], tiles.layers["label"], classes, from_section(TrainSettings, train), seed, device=device
    )
    segmenter.save(outputs.model)
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
    with atomic_path(outputs.metrics) as tmp:
        tmp.write_text(json.dumps(metrics, indent=2))
    return metrics


def audit_stage(
    *,
    model_path: PathLike,
    dataset_root: PathLike,
    heldout_root: PathLike,
    outputs: AuditOutputs,
    audit: dict[str, Any],
    seed: int,
    heldout_split: str | None,
    threads: int = 1,
    device: str = "cpu",
) -> None:
    """The density audit of spec §5.a over the checkpoint at ``model_path``; ``seed`` draws the
    Jacobian sketch and random projection mask (``AuditSettings.seed``)."""
    _threads(threads)
    summary = run_density_audit(
        load_segmenter(model_path, device), dataset_root, heldout_root, outputs.density, outputs.tables(),
        outputs.figures(), from_section(AuditSettings, audit, seed=seed), heldout_split=heldout_split,
    )
    log.info("density audit:\n%s", summary.to_string())


def audit_pretrained_stage(
    *,
    checkpoint: PathLike,
    dataset_root: PathLike,
    heldout_root: PathLike,
    outputs: AuditOutputs,
    run: str,
    modality: str,
    audit: dict[str, Any],
    seed: int,
    heldout_split: str | None,
    threads: int = 1,
    device: str = "cpu",
) -> pd.DataFrame:
    """Entry point of rule ``audit_pretrained``: the density audit of one branch of the pretraining
    run ``run`` (``<variant>_<bands>``, e.g. ``cromss_midF_b9``). No season is withheld: the
    pretraining saw them all."""
    _threads(threads)
    variant, bands = split_run(run, SchemaChoices(list(VARIANTS), list(BAND_SETS)))
    segmenter = load_pretrained_segmenter(checkpoint, modality, variant, bands, device)
    log.info("auditing the %s branch of %s (%s, %s, epoch %s)", segmenter.modality, checkpoint,
             segmenter.kind, segmenter.encoder_name, segmenter.epoch)
    settings = from_section(AuditSettings, audit, seed=seed, withheld_season=None)
    summary = audit_pretrained(
        segmenter, dataset_root, heldout_root, outputs.density, outputs.tables(), outputs.figures(), settings,
        run, heldout_split,
    )
    log.info("density audit of %s:\n%s", run, summary.to_string())
    return summary


def denoise_stage(
    *,
    dataset_root: PathLike,
    heldout_root: PathLike,
    outputs: DenoiseOutputs,
    train: dict[str, Any],
    denoise: dict[str, Any],
    seed: int,
    heldout_split: str | None,
    threads: int = 1,
    device: str = "cpu",
) -> None:
    """Self-denoising rounds of spec §5.b and the export of the last round's labels."""
    _threads(threads)
    table = run_self_denoising(
        dataset_root, heldout_root, outputs.rounds, outputs.dataset,
        {"csv": outputs.table, "md": outputs.markdown, "rounds": outputs.details}, outputs.figure,
        from_section(TrainSettings, train), from_section(DenoiseSettings, denoise), seed, heldout_split,
        device=device,
    )
    log.info("self-denoising:\n%s", table.to_string())


def toy_stage(*, toy: dict[str, Any], seed: int, outputs: ToyOutputs, threads: int = 1) -> None:
    """The paper's toy of spec §2.4."""
    _threads(threads)
    run_toy_study(
        from_section(ToyStudy, toy), seed, outputs.table, outputs.markdown,
        {"soft": outputs.soft, "hard_t0.9": outputs.hard},
    )
