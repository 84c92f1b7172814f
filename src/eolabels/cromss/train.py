"""Pretraining of CromSS and its baselines on the shared training layer (spec §5).

The reference runs Lightning; :class:`PretrainTrainer` fills in the hooks of
:class:`eolabels.training.Trainer` so that what matters for the numbers is reproduced: Adam with
ReduceLROnPlateau on the validation loss, a 1 % validation split drawn with seed 42,
``drop_last`` batches, epoch-indexed sample selection, AMP on CUDA only, and one checkpoint per
epoch that holds everything needed for an exact resume.  Checkpoints keep the authors'
``state_dict`` layout (``net.<keys>``), so :mod:`eolabels.cromss.checkpoint` reads ours and theirs alike.

Samples are dicts ``{"s1": (2,H,W) float, "s2": (13|9,H,W) float, "label": (H,W) int64,
"prior": (9,H,W) float[, "truth": (H,W) int64]}``; only the variant's modalities are needed,
``prior`` is only read when label smoothing uses it, and ``truth`` (a hidden true map, never a
training target) adds validation metrics against it.  An optional downstream test split (the DW
test tiles, as the paper's Fig. 8 a,b) is scored every ``dw_test_every`` epochs beside the
validation split: samples ``{"s1", "s2", "label"}`` with 255 unlabelled.
Under torchrun each process draws its own shard (``DistributedSampler``) with the per-process
batch size of the reference (128 per GPU), so BN and sample selection see per-GPU batches as in the
reference; the validation loss and confusion matrices are summed over processes.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, RandomSampler, Subset, random_split

from eolabels.cromss.checkpoint import LIGHTNING_PREFIX
from eolabels.cromss.losses import ConsistencyKind, cromss_loss, segmentation_loss, validation_loss
from eolabels.cromss.models import ModelKind, build_pretrain_model
from eolabels.cromss.schedules import selection_ratio
from eolabels.cromss.selection import SelectionConfig, cross_modal_selection
from eolabels.cromss.smoothing import smoothed_target
from eolabels.finetune.tasks import SCORES
from eolabels.metrics import SegmentationMetrics
from eolabels.models import forward_whole_tiles
from eolabels.training import (
    Trainer, evaluation_shard, is_distributed, seed_everything, seed_worker, sum_over_processes,
)

log = logging.getLogger(__name__)
SPLIT_SEED = 42  # the reference's ``random_split`` generator seed (§5)
DW_TEST_IGNORE = 255  # unlabelled pixels of the DW task's test split (:mod:`eolabels.finetune.data`)


@dataclass(frozen=True)
class PretrainConfig:
    """Pretraining settings.

    Defaults are the schema's CPU-sized ones (config/schemas/cromss.yaml; config/paper.yaml holds
    the paper's: resnet50, 200 epochs, batch 128, 1 % validation). ``kind``, ``modality`` and
    ``sample_selection`` come from the variant, ``in_channels_s2`` from the band set, ``classes``
    from the DW class table, ``split_seed`` is the reference's.
    """

    kind: ModelKind = "mid_fusion"
    modality: Literal["s1", "s2"] = "s2"  # input of the ``single`` baseline
    encoder_name: str = "tu-mobilenetv3_small_050"
    decoder_channels: tuple[int, ...] = (256, 128, 64, 32, 16)  # the reference's U-Net decoder
    in_channels_s2: int = 13
    classes: int = 9
    sample_selection: bool = True
    selection: SelectionConfig = field(default_factory=SelectionConfig)
    # --label_smoothing_factor: [β, α] with the prior, [β] prior only, [α] with use_prior=False
    label_smoothing: tuple[float, ...] | None = (0.15, 0.05)
    use_prior: bool = True
    consistency: ConsistencyKind = "ce"
    consistency_weight: float = 1.0
    epochs: int = 8
    batch_size: int = 4
    val_batch_size: int = 4
    val_fraction: float = 0.25
    split_seed: int = SPLIT_SEED
    seed: int = 0
    lr: float = 5e-3
    weight_decay: float = 1e-8
    plateau_factor: float = 0.5
    plateau_patience: int = 30
    plateau_threshold: float = 1e-4
    amp: bool = True  # used on CUDA only
    num_workers: int = 0
    max_batches_per_epoch: int | None = None  # Lightning's limit_train_batches, for short runs
    checkpoint_every: int = 10  # kept epoch checkpoints; ``last.ckpt`` is written every epoch
    dw_test_every: int = 1  # epochs between scores on the DW test split (when one is given; 0 = never)

    def __post_init__(self) -> None:
        if self.kind == "single" and self.sample_selection:
            raise ValueError("sample selection needs two modalities; use kind='mid_fusion' or 'late_fusion'")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must lie in [0, 1), got {self.val_fraction}")
        if self.dw_test_every < 0:
            raise ValueError(f"dw_test_every must be 0 (never) or more, got {self.dw_test_every}")

    @property
    def modalities(self) -> tuple[str, ...]:
        """The inputs the variant reads, in the order its branches are numbered (1 = S1)."""
        return (self.modality,) if self.kind == "single" else ("s1", "s2")


# the six pretraining variants compared in the paper
VARIANTS: dict[str, dict[str, Any]] = {
    "s1": {"kind": "single", "modality": "s1", "sample_selection": False},
    "s2": {"kind": "single", "modality": "s2", "sample_selection": False},
    "midF": {"kind": "mid_fusion", "sample_selection": False},
    "lateF": {"kind": "late_fusion", "sample_selection": False},
    "cromss_midF": {"kind": "mid_fusion", "sample_selection": True},
    "cromss_lateF": {"kind": "late_fusion", "sample_selection": True},
}


def variant_config(name: str, **overrides: Any) -> PretrainConfig:
    """The ``PretrainConfig`` of a named variant, with further settings overridden."""
    if name not in VARIANTS:
        raise ValueError(f"unknown pretraining variant {name!r}; expected one of {sorted(VARIANTS)}")
    return PretrainConfig(**{**VARIANTS[name], **overrides})


def _centre_crop(batch: dict[str, Tensor], size: int | None) -> dict[str, Tensor]:
    """The central ``size`` × ``size`` window of every (B, [C,] H, W) tensor of a batch whose tiles
    are larger (the crop training draws at random; NoLDO-S12's 264-px tiles need one)."""
    if size is None:
        return batch
    height, width = batch["label"].shape[-2:]
    top, left = max(0, (height - size) // 2), max(0, (width - size) // 2)
    return {key: value[..., top:top + size, left:left + size] for key, value in batch.items()}


def split_train_val(dataset: Dataset, fraction: float, seed: int) -> tuple[Subset, Subset]:
    """``random_split`` of ``fraction`` for validation with ``Generator().manual_seed(seed)`` (§5).

    At least one validation sample is kept when ``fraction`` > 0, so tiny datasets still validate.
    """
    n = len(dataset)  # type: ignore[arg-type]
    n_val = max(1, int(n * fraction)) if fraction > 0 else 0
    if n - n_val < 1:
        raise ValueError(f"dataset of {n} samples is too small for a {fraction:.0%} validation split")
    train, val = random_split(dataset, [n - n_val, n_val], generator=torch.Generator().manual_seed(seed))
    return train, val


def _check_batch(batch: dict[str, Tensor], config: PretrainConfig) -> None:
    missing = [k for k in (*config.modalities, "label") if k not in batch]
    if missing:
        raise ValueError(f"batch lacks {missing} (has {sorted(batch)})")
    label = batch["label"]
    images = {m: batch[m] for m in config.modalities}
    if any(x.shape[0] != label.shape[0] or x.shape[2:] != label.shape[1:] for x in images.values()):
        shapes = ", ".join(f"{k} {tuple(v.shape)}" for k, v in {**images, "label": label}.items())
        raise ValueError(f"batch shapes disagree: {shapes}")
    s2 = batch.get("s2")
    if "s2" in config.modalities and s2.shape[1] != config.in_channels_s2:
        raise ValueError(f"S2 input has {s2.shape[1]} bands, the model expects {config.in_channels_s2}")


class PretrainTrainer(Trainer):
    """Trains one pretraining variant into ``out_dir`` (checkpoints + ``metrics.csv``), resumably."""

    scheduler_monitor = "v_loss"
    state_dict_prefix = LIGHTNING_PREFIX  # the authors' layout, ``net.<keys>`` (§1)

    def __init__(self, config: PretrainConfig, dataset: Dataset, out_dir: str | Path,
                 device: str = "auto", progress: bool = True, test_set: Dataset | None = None) -> None:
        seed_everything(config.seed)
        self.test_set = test_set
        self.train_set, self.val_set = split_train_val(dataset, config.val_fraction, config.split_seed)
        if len(self.train_set) < config.batch_size:
            raise ValueError(
                f"{len(self.train_set)} training samples cannot fill one batch of {config.batch_size} "
                "(batches drop the last incomplete one)"
            )
        super().__init__(config, epochs=config.epochs, out_dir=out_dir, checkpoint_every=config.checkpoint_every,
                         amp=config.amp, device=device, progress=progress)

    def configure_model(self) -> nn.Module:
        c = self.config
        return build_pretrain_model(c.kind, c.encoder_name, in_channels_s2=c.in_channels_s2, classes=c.classes,
                                    modality=c.modality, decoder_channels=c.decoder_channels)

    def configure_optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.model.parameters(), lr=self.config.lr, weight_decay=self.config.weight_decay)

    def configure_scheduler(self) -> torch.optim.lr_scheduler.ReduceLROnPlateau:
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            self.optimizer, mode="min", factor=self.config.plateau_factor,
            patience=self.config.plateau_patience, threshold=self.config.plateau_threshold,
        )

    # ------------------------------------------------------------------ data

    def _loader(self, subset: Subset, batch_size: int, epoch: int, shuffle: bool) -> DataLoader:
        # one generator per epoch: the shuffle order depends on (seed, epoch) only, so a resumed
        # run sees the same batches as an uninterrupted one
        generator = torch.Generator().manual_seed(self.config.seed * 100_003 + epoch)
        if is_distributed():
            sampler = DistributedSampler(subset, shuffle=shuffle, seed=self.config.seed, drop_last=True)
            sampler.set_epoch(epoch)
        else:
            sampler = RandomSampler(subset, generator=generator) if shuffle else None
        return DataLoader(
            subset, batch_size=batch_size, sampler=sampler, drop_last=True,
            num_workers=self.config.num_workers, worker_init_fn=seed_worker, generator=generator,
            pin_memory=self.device.type == "cuda",
        )

    def train_batches(self, epoch: int) -> tuple[Iterable[dict[str, Tensor]], int]:
        loader = self._loader(self.train_set, self.config.batch_size, epoch, shuffle=True)
        limit = self.config.max_batches_per_epoch
        total = len(loader) if limit is None else min(limit, len(loader))
        return itertools.islice(loader, total), total

    def _to_device(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        _check_batch(batch, self.config)
        return {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}

    def _target(self, batch: dict[str, Tensor]) -> Tensor:
        """Smoothed target ỹ (Eq. 13) or the hard noisy label."""
        factors = self.config.label_smoothing
        if not factors:
            return batch["label"]
        prior = batch["prior"].float() if self.config.use_prior else None
        return smoothed_target(batch["label"], prior, factors, self.config.classes)

    # ------------------------------------------------------------------ steps

    def _logits(self, batch: dict[str, Tensor]) -> tuple[Tensor, ...]:
        with self.autocast():
            if self.config.kind == "single":
                out: tuple[Tensor, ...] = (self.network(batch[self.config.modality]),)
            else:
                out = tuple(self.network(batch["s1"], batch["s2"]))
        return tuple(x.float() for x in out)

    def training_step(self, batch: dict[str, Tensor], epoch: int) -> tuple[Tensor, dict[str, float]]:
        batch = self._to_device(batch)
        logits = self._logits(batch)
        target = self._target(batch)
        if self.config.kind == "single":
            loss = segmentation_loss(logits[0], target)
            return loss, {"tr_loss": loss.item()}
        selection = (
            cross_modal_selection(logits[0], logits[1], batch["label"], epoch, self.config.selection)
            if self.config.sample_selection else None
        )
        terms = cromss_loss(logits[0], logits[1], target, selection, self.config.consistency,
                            self.config.consistency_weight)
        names = ("tr_segloss_1", "tr_segloss_2", "tr_segloss", "tr_conloss_2t", "tr_conloss_2i",
                 "tr_conloss", "tr_loss")
        parts = dict(zip(names, terms.components().tolist()))
        if selection is not None:
            # mean segmentation weight per branch: the share of the batch the selection keeps
            parts.update({f"tr_selweight_{d}": float(w.mean()) for d, w in
                          enumerate(selection.segmentation, start=1)})
        return terms.total, parts

    def train_epoch(self, epoch: int) -> dict[str, float]:
        """One pass over the training split: the mean of each logged loss term, and the selection ratio."""
        row = super().train_epoch(epoch)
        if self.config.sample_selection:
            sel = self.config.selection
            row["sel_ratio"] = selection_ratio(epoch, sel.final_ratio, sel.rampdown_epochs, sel.ramp)
        return row

    @torch.no_grad()
    def evaluate_heldout(self) -> dict[str, float]:
        """Every season of every held-out location, unaugmented (centre crop): the final scores.

        The per-epoch validation draws one random season per location, which on a few dozen
        held-out tiles moves by several points between epochs. Scores per branch against the noisy
        labels (``h{i}_*``) and, with a hidden truth, against it (``h{i}_truth_*``), plus the noisy
        labels' own scores against the truth (``labels_truth_*``): the bar a branch must clear.
        """
        if len(self.val_set) == 0:
            return {}
        dataset, items = self.val_set.dataset, self.val_set.indices
        self.network.eval()
        n_branches = 1 if self.config.kind == "single" else 2
        classes = self.config.classes
        noisy = [SegmentationMetrics(classes, ignore_index=None) for _ in range(n_branches)]
        truth = [SegmentationMetrics(classes) for _ in range(n_branches)]
        labels_vs_truth = SegmentationMetrics(classes)
        pairs = [(item, season) for item in items for season in range(dataset.n_seasons)]
        step = self.config.val_batch_size
        for start in range(0, len(pairs), step):
            samples = [dataset.sample(item, season) for item, season in pairs[start:start + step]]
            batch = self._to_device(_centre_crop(
                {key: torch.stack([s[key] for s in samples]) for key in samples[0]}, dataset.crop_size))
            logits = self._logits(batch)
            for m, x in zip(noisy, logits):
                m.update(batch["label"], x.argmax(dim=1))
            if "truth" in batch:
                labels_vs_truth.update(batch["truth"], batch["label"])
                for m, x in zip(truth, logits):
                    m.update(batch["truth"], x.argmax(dim=1))
        named = {f"h{i}_": m for i, m in enumerate(noisy, start=1)}
        if labels_vs_truth.matrix.any():
            named |= {f"h{i}_truth_": m for i, m in enumerate(truth, start=1)} | {"labels_truth_": labels_vs_truth}
        return {f"{prefix}{k}": value for prefix, m in named.items()
                for k, value in m.compute().items() if k in SCORES}

    def config_record(self) -> Any:
        """The run's identity without the DW-test cadence: it adds metric columns, not training, so a
        changed cadence resumes an unfinished run."""
        record = super().config_record()
        record.pop("dw_test_every", None)
        return record

    @torch.no_grad()
    def evaluate_test(self) -> dict[str, float]:
        """Each branch on the downstream test split (``t{i}_*``): whole tiles, 255 ignored.

        Each process scores every ``world``-th tile and the confusion matrices are summed, so all
        processes must call it (as :meth:`validate` does).
        """
        self.network.eval()
        model = self.evaluation_model()  # a process may hold no tile: no collective forward
        n_branches = 1 if self.config.kind == "single" else 2
        metrics = [SegmentationMetrics(self.config.classes, ignore_index=DW_TEST_IGNORE) for _ in range(n_branches)]
        # a loader of its own generator: an evaluation must not draw from the training's random stream
        loader = DataLoader(evaluation_shard(self.test_set), batch_size=self.config.val_batch_size, num_workers=self.config.num_workers,
                            generator=torch.Generator())
        for batch in loader:
            inputs = tuple(batch[m].to(self.device, non_blocking=True) for m in self.config.modalities)
            with self.autocast():
                logits = forward_whole_tiles(model, *inputs)
            for m, x in zip(metrics, logits):
                m.update(batch["label"], x.float().argmax(dim=1).cpu())
        row: dict[str, float] = {}
        for i, m in enumerate(metrics, start=1):
            m.matrix = sum_over_processes(torch.from_numpy(m.matrix).to(self.device)).cpu().numpy()
            if m.matrix.sum() == 0:
                raise ValueError("the downstream test split has no labelled pixel: nothing to score")
            scores = m.compute()
            row.update({f"t{i}_{k}": scores[k] for k in SCORES})
        return row

    @torch.no_grad()
    def validate(self, epoch: int) -> dict[str, float]:
        """``v_loss`` (hard labels, no selection, §2) and per-modality metrics against the noisy labels;
        on the epochs ``dw_test_every`` names, the scores on the DW test split too."""
        every = self.config.dw_test_every
        test = (self.evaluate_test() if self.test_set is not None and every
                and ((epoch + 1) % every == 0 or epoch + 1 == self.epochs) else {})
        if len(self.val_set) == 0:
            return test
        self.network.eval()
        n_branches = 1 if self.config.kind == "single" else 2
        metrics = [SegmentationMetrics(self.config.classes, ignore_index=None) for _ in range(n_branches)]
        truth_metrics = [SegmentationMetrics(self.config.classes) for _ in range(n_branches)]
        has_truth = False
        total, n_batches = 0.0, 0
        batch_size = min(self.config.val_batch_size, len(self.val_set))
        for batch in self._loader(self.val_set, batch_size, epoch, shuffle=False):
            batch = self._to_device(batch)
            logits = self._logits(batch)
            labels = batch["label"]
            if self.config.kind == "single":
                loss = segmentation_loss(logits[0], labels)
            else:
                loss = validation_loss(logits[0], logits[1], labels, self.config.consistency,
                                       self.config.consistency_weight)
            total += loss.item()
            n_batches += 1
            for m, x in zip(metrics, logits):
                m.update(labels, x.argmax(dim=1))
            if "truth" in batch:
                has_truth = True
                for m, x in zip(truth_metrics, logits):
                    m.update(batch["truth"], x.argmax(dim=1))
        total, n_batches = sum_over_processes(
            torch.tensor([total, n_batches], dtype=torch.float64, device=self.device)).tolist()
        row = {"v_loss": total / max(n_batches, 1)}
        groups = [("", metrics)] + ([("truth_", truth_metrics)] if has_truth else [])
        for prefix, group in groups:
            for i, m in enumerate(group, start=1):
                m.matrix = sum_over_processes(torch.from_numpy(m.matrix).to(self.device)).cpu().numpy()
                scores = m.compute()
                row.update({f"v{i}_{prefix}{k}": scores[k] for k in SCORES})
        return row | test
