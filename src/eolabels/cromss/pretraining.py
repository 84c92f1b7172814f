"""One pretraining variant: config section → dataset + trainer → files.

:func:`pretrain_variant` runs in the rule's process or, for data-parallel training, in each
``torchrun`` process (``python -m eolabels.launch``; :func:`eolabels.cromss.stages.pretrain_encoder`
decides).  Files written into the variant's folder: ``epoch=<last>.ckpt`` (the full final checkpoint,
the authors' naming), ``last.ckpt`` (rewritten every epoch: a killed run resumes from it),
``metrics.csv`` (one row per epoch), ``encoders.pt`` (per-modality encoder state_dicts for
fine-tuning) and ``summary.json``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch.distributed as dist

from eolabels.atomic import atomic_path
from eolabels.cromss.checkpoint import export_encoders, save_encoders
from eolabels.cromss.dataset import NoisyLabelPretrainDataset
from eolabels.cromss.models import count_parameters
from eolabels.cromss.normalization import s2_band_indices
from eolabels.cromss.selection import SelectionConfig
from eolabels.cromss.train import DW_TEST_IGNORE, SPLIT_SEED, VARIANTS, PretrainConfig, PretrainTrainer
from eolabels.data.kinds import IMAGES, NOLDO
from eolabels.distributed import join_process_group
from eolabels.finetune.data import CrossModalTestSet
from eolabels.finetune.tasks import task
from eolabels.report.tables import is_synthetic
from eolabels.settings import from_section
from eolabels.tables import load_schema
from eolabels.training import LAST_CHECKPOINT, is_distributed, is_main_process

log = logging.getLogger(__name__)
ENCODERS_FILE = "encoders.pt"
SUMMARY_FILE = "summary.json"
BAND_SETS = {"b13": 13, "b9": 9}


def s2_channels(bands: str) -> int:
    """``b13`` → 13, ``b9`` → 9 (the wildcard's band sets, spec §6)."""
    if bands not in BAND_SETS:
        raise ValueError(f"unknown S2 band set {bands!r}; expected one of {sorted(BAND_SETS)}")
    return BAND_SETS[bands]


def smoothing_settings(settings: Mapping[str, Any]) -> tuple[tuple[float, ...] | None, str | None]:
    """(label_smoothing factors, prior kind) from the config's ``label_smoothing`` section (§4)."""
    section = settings["label_smoothing"]
    factors = tuple(float(f) for f in section["factors"])
    prior = section["prior"]
    if not factors:
        return None, None
    if prior == "none" and len(factors) != 1:
        raise ValueError(f"label_smoothing without a prior takes one factor [alpha], got {list(factors)}")
    return factors, (None if prior == "none" else prior)


def pretrain_config(variant: str, bands: str, settings: Mapping[str, Any], seed: int) -> PretrainConfig:
    """The trainer's settings for one variant from the validated ``cromss:`` config section.

    Every value comes from the section (the schema holds the defaults); the variant fixes the model
    kind, input and selection, the band set the S2 channels, the DW class table the class count.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown pretraining variant {variant!r}; expected one of {sorted(VARIANTS)}")
    factors, prior = smoothing_settings(settings)
    plateau, consistency = settings["plateau"], settings["consistency"]
    # ``modality`` is only the single-modal baseline's input; fusion variants keep the S2 default
    variant_fields = {"modality": "s2", **VARIANTS[variant]}
    return from_section(
        PretrainConfig, settings,
        **variant_fields,
        encoder_name=settings["encoder"],
        in_channels_s2=s2_channels(bands),
        classes=load_schema(NOLDO.layer("label").schema).num_classes,
        selection=from_section(SelectionConfig, settings["selection"]),
        label_smoothing=factors,
        use_prior=prior is not None,
        consistency=consistency["kind"],
        consistency_weight=float(consistency["weight"]),
        split_seed=SPLIT_SEED,
        seed=seed,
        plateau_factor=plateau["factor"],
        plateau_patience=plateau["patience"],
        plateau_threshold=plateau["threshold"],
    )


def pretrain_dataset(dataset_dir: str | Path, config: PretrainConfig, settings: Mapping[str, Any],
                     seed: int) -> NoisyLabelPretrainDataset:
    """The variant's view of the dataset: its modalities and bands, the prior only if smoothed."""
    _, prior = smoothing_settings(settings)
    return NoisyLabelPretrainDataset(
        dataset_dir, config.modalities, config.in_channels_s2,
        prior_kind=prior if config.label_smoothing and config.use_prior else None,
        crop_size=settings["crop_size"], seed=seed, cache=settings["cache_tiles"],
    )


def dw_test_set(test_dir: str | Path, config: PretrainConfig) -> CrossModalTestSet:
    """The DW task's test split in the variant's modalities and S2 bands (Fig. 8 a,b)."""
    dw = task("dw")
    if (dw.classes, dw.ignore_index) != (config.classes, DW_TEST_IGNORE):
        raise ValueError(f"the DW task has {dw.classes} classes (ignore {dw.ignore_index}), the pretraining "
                         f"networks {config.classes} (ignore {DW_TEST_IGNORE}): their scores would not compare")
    return CrossModalTestSet(test_dir, dw, dw.test_split, config.modalities, s2_band_indices(config.in_channels_s2))


def pretrain_variant(*, dataset_dir: str | Path, out_dir: str | Path, variant: str, bands: str,
                     settings: Mapping[str, Any], seed: int, device: str = "auto",
                     progress: bool = True, test_dir: str | Path | None = None) -> PretrainTrainer:
    """Train one variant into ``out_dir`` (resuming from its ``last.ckpt``) and export its encoders;
    with ``test_dir`` (the DW dataset) each branch is also scored on its test split per epoch."""
    out_dir = Path(out_dir)
    device = join_process_group(device)
    config = pretrain_config(variant, bands, settings, seed)
    dataset = pretrain_dataset(dataset_dir, config, settings, seed)
    test_set = dw_test_set(test_dir, config) if test_dir is not None and config.dw_test_every else None
    trainer = PretrainTrainer(config, dataset, out_dir, device=device, progress=progress, test_set=test_set)
    last = out_dir / LAST_CHECKPOINT
    if is_main_process() and last.is_file() and not trainer.can_resume_from(last):
        # a finished run (Snakemake re-runs it for a reason), other settings or an unreadable file
        log.warning("discarding %s: finished, unreadable, or written with other settings", last)
        last.unlink()
    if is_distributed():
        dist.barrier()  # every process decides to resume after the first one did
    log.info("%s_%s: %s, %d parameters, %d train / %d validation locations", variant, bands,
             config.encoder_name, count_parameters(trainer.model), len(trainer.train_set), len(trainer.val_set))
    trainer.fit()
    # every process scores the same tiles: the data-parallel forward must run on all of them
    heldout = trainer.evaluate_heldout()
    dataset.close()
    if is_main_process():
        in_channels = {"s1": len(IMAGES["s1"].bands), "s2": config.in_channels_s2}
        save_encoders(out_dir / ENCODERS_FILE, export_encoders(trainer.model, config.modality),
                      config.encoder_name, in_channels, variant=variant, bands=bands,
                      epochs=trainer.epoch)
        write_summary(out_dir / SUMMARY_FILE, trainer, dataset, variant, bands, heldout)
    return trainer


def write_summary(path: Path, trainer: PretrainTrainer, dataset: NoisyLabelPretrainDataset,
                  variant: str, bands: str, heldout: dict[str, float]) -> None:
    """What the table rule needs: settings, data provenance, the last epoch's metrics and the final
    scores on every season of the held-out locations."""
    meta = dataset.index.meta
    world = int(os.environ.get("WORLD_SIZE", "1"))
    summary = {
        "variant": variant,
        "bands": bands,
        "modalities": list(trainer.config.modalities),
        "encoder": trainer.config.encoder_name,
        "epochs": trainer.epoch,
        "processes": world,
        "effective_batch": trainer.config.batch_size * world,
        "parameters": count_parameters(trainer.model),
        "dataset": str(dataset.root),
        "source": meta.source,
        "synthetic": is_synthetic(meta.source),
        "seasons": list(meta.seasons),
        "train_locations": len(trainer.train_set),
        "val_locations": len(trainer.val_set),
        "prior_note": dataset.prior_note,
        "final": trainer.history[-1] if trainer.history else {},
        "heldout": heldout,
    }
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(summary, indent=2))
