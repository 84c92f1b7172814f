"""Pretraining loop of CromSS and its baselines in plain PyTorch (spec §5).

The reference runs Lightning; this trainer reproduces what matters for the numbers: Adam with
ReduceLROnPlateau on the validation loss, a 1 % validation split drawn with seed 42,
``drop_last`` batches, epoch-indexed sample selection, AMP on CUDA only, and one checkpoint per
epoch that holds everything needed for an exact resume (model, optimiser, scheduler, scaler, RNG
states, metric history).  Checkpoints keep the authors' ``state_dict`` layout (``net.<keys>``),
so :mod:`eolabels.cromss.checkpoint` reads ours and theirs alike.

Samples are dicts ``{"s1": (2,H,W) float, "s2": (13|9,H,W) float, "label": (H,W) int64,
"prior": (9,H,W) float[, "truth": (H,W) int64]}``; only the variant's modalities are needed,
``prior`` is only read when label smoothing uses it, and ``truth`` (a hidden true map, never a
training target) adds validation metrics against it.
Under torchrun (an initialised process group) the model is wrapped in DistributedDataParallel
without SyncBN, each process draws its own shard (``DistributedSampler``) with the per-process
batch size of the reference (128 per GPU), so BN and sample selection see per-GPU batches as in the
reference; the validation loss and confusion matrices are summed over processes and only rank 0
writes files.
"""

from __future__ import annotations

import csv
import itertools
import logging
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler, RandomSampler, Subset, random_split
from tqdm.auto import tqdm

from eolabels.cromss.checkpoint import LIGHTNING_PREFIX
from eolabels.cromss.losses import ConsistencyKind, cromss_loss, segmentation_loss, validation_loss
from eolabels.cromss.models import ModelKind, build_pretrain_model
from eolabels.cromss.schedules import selection_ratio
from eolabels.cromss.selection import SelectionConfig, cross_modal_selection
from eolabels.cromss.smoothing import smoothed_target
from eolabels.atomic import atomic_path
from eolabels.metrics import SegmentationMetrics
from eolabels.device import resolve_device

log = logging.getLogger(__name__)
LAST_CHECKPOINT = "last.ckpt"
METRICS_CSV = "metrics.csv"


@dataclass(frozen=True)
class PretrainConfig:
    """Pretraining settings; defaults are the README run of CromSS (§5)."""

    kind: ModelKind = "mid_fusion"
    modality: Literal["s1", "s2"] = "s2"  # input of the ``single`` baseline
    encoder_name: str = "resnet50"
    in_channels_s2: int = 13
    classes: int = 9
    sample_selection: bool = True
    selection: SelectionConfig = field(default_factory=SelectionConfig)
    # --label_smoothing_factor: [β, α] with the prior, [β] prior only, [α] with use_prior=False
    label_smoothing: tuple[float, ...] | None = (0.15, 0.05)
    use_prior: bool = True
    consistency: ConsistencyKind = "ce"
    consistency_weight: float = 1.0
    epochs: int = 200
    batch_size: int = 128
    val_batch_size: int = 5
    val_fraction: float = 0.01
    split_seed: int = 42
    seed: int = 42
    lr: float = 5e-3
    weight_decay: float = 1e-8
    plateau_factor: float = 0.5
    plateau_patience: int = 30
    plateau_threshold: float = 1e-4
    amp: bool = True  # used on CUDA only
    num_workers: int = 0
    max_batches_per_epoch: int | None = None  # Lightning's limit_train_batches, for short runs
    checkpoint_every: int = 10  # kept epoch checkpoints; ``last.ckpt`` is written every epoch

    def __post_init__(self) -> None:
        if self.kind == "single" and self.sample_selection:
            raise ValueError("sample selection needs two modalities; use kind='mid_fusion' or 'late_fusion'")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must lie in [0, 1), got {self.val_fraction}")

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


def epoch_checkpoint_name(epoch: int) -> str:
    """File name of a kept epoch checkpoint, 0-based as the authors' ``epoch=199.ckpt``."""
    return f"epoch={epoch:03d}.ckpt"


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


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def _is_main_process() -> bool:
    return not _distributed() or dist.get_rank() == 0


def _sum_over_processes(values: Tensor) -> Tensor:
    if _distributed():
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def _seed_worker(worker_id: int) -> None:
    # numpy and random in loader workers follow torch's per-worker seed, so augmentations repeat
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def _rng_state() -> dict[str, Any]:
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
        "python": random.getstate(),
    }


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_py = state["python"]
    random.setstate((version, tuple(internal), gauss_py))


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


class PretrainTrainer:
    """Trains one pretraining variant into ``out_dir`` (checkpoints + ``metrics.csv``), resumably."""

    def __init__(self, config: PretrainConfig, dataset: Dataset, out_dir: str | Path,
                 device: str = "auto", progress: bool = True) -> None:
        self.config = config
        self.out_dir = Path(out_dir)
        self.device = resolve_device(device)
        self.progress = progress
        torch.manual_seed(config.seed)
        np.random.seed(config.seed)
        random.seed(config.seed)
        self.model = build_pretrain_model(
            config.kind, config.encoder_name, in_channels_s2=config.in_channels_s2,
            classes=config.classes, modality=config.modality,
        ).to(self.device)
        # ``network`` runs the steps; ``model`` is the bare module whose weights are saved
        self.network: nn.Module = self.model
        if _distributed():
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            self.network = DistributedDataParallel(self.model, device_ids=device_ids)
        self.train_set, self.val_set = split_train_val(dataset, config.val_fraction, config.split_seed)
        if len(self.train_set) < config.batch_size:
            raise ValueError(
                f"{len(self.train_set)} training samples cannot fill one batch of {config.batch_size} "
                "(batches drop the last incomplete one)"
            )
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr,
                                          weight_decay=config.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            self.optimizer, mode="min", factor=config.plateau_factor,
            patience=config.plateau_patience, threshold=config.plateau_threshold,
        )
        self.use_amp = config.amp and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)
        self.epoch = 0  # number of completed epochs
        self.history: list[dict[str, float]] = []

    # ------------------------------------------------------------------ data

    def _loader(self, subset: Subset, batch_size: int, epoch: int, shuffle: bool) -> DataLoader:
        # one generator per epoch: the shuffle order depends on (seed, epoch) only, so a resumed
        # run sees the same batches as an uninterrupted one
        generator = torch.Generator().manual_seed(self.config.seed * 100_003 + epoch)
        if _distributed():
            sampler = DistributedSampler(subset, shuffle=shuffle, seed=self.config.seed, drop_last=True)
            sampler.set_epoch(epoch)
        else:
            sampler = RandomSampler(subset, generator=generator) if shuffle else None
        return DataLoader(
            subset, batch_size=batch_size, sampler=sampler, drop_last=True,
            num_workers=self.config.num_workers, worker_init_fn=_seed_worker, generator=generator,
            pin_memory=self.device.type == "cuda",
        )

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
        with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.use_amp):
            if self.config.kind == "single":
                out: tuple[Tensor, ...] = (self.network(batch[self.config.modality]),)
            else:
                out = tuple(self.network(batch["s1"], batch["s2"]))
        return tuple(x.float() for x in out)

    def _training_loss(self, batch: dict[str, Tensor], epoch: int) -> tuple[Tensor, dict[str, float]]:
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
        """One pass over the training split; returns the mean of each logged loss term."""
        self.network.train()
        sums: dict[str, float] = {}
        n_batches = 0
        loader = self._loader(self.train_set, self.config.batch_size, epoch, shuffle=True)
        limit = self.config.max_batches_per_epoch
        total = len(loader) if limit is None else min(limit, len(loader))
        batches = itertools.islice(loader, total)
        for batch in tqdm(batches, desc=f"epoch {epoch}", total=total, disable=not self.progress, leave=False):
            batch = self._to_device(batch)
            loss, parts = self._training_loss(batch, epoch)
            if not math.isfinite(loss.item()):
                raise FloatingPointError(f"non-finite training loss {loss.item()} at epoch {epoch}")
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + v
            n_batches += 1
        row = {k: v / max(n_batches, 1) for k, v in sums.items()}
        if self.config.sample_selection:
            sel = self.config.selection
            row["sel_ratio"] = selection_ratio(epoch, sel.final_ratio, sel.rampdown_epochs, sel.ramp)
        return row

    @torch.no_grad()
    def validate(self, epoch: int) -> dict[str, float]:
        """``v_loss`` (hard labels, no selection, §2) and per-modality metrics against the noisy labels."""
        if len(self.val_set) == 0:
            return {}
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
        total, n_batches = _sum_over_processes(
            torch.tensor([total, n_batches], dtype=torch.float64, device=self.device)).tolist()
        row = {"v_loss": total / max(n_batches, 1)}
        groups = [("", metrics)] + ([("truth_", truth_metrics)] if has_truth else [])
        for prefix, group in groups:
            for i, m in enumerate(group, start=1):
                m.matrix = _sum_over_processes(torch.from_numpy(m.matrix).to(self.device)).cpu().numpy()
                scores = m.compute()
                row.update({f"v{i}_{prefix}{k}": scores[k] for k in ("OA", "AA", "mIoU", "mF1")})
        return row

    # ------------------------------------------------------------------ loop

    def fit(self, epochs: int | None = None, stop_after: int | None = None) -> list[dict[str, float]]:
        """Train up to ``epochs`` (default: the config's), resuming from ``last.ckpt`` if present.

        ``stop_after`` ends this call after that many epochs (a budgeted or interrupted run).
        """
        epochs = self.config.epochs if epochs is None else epochs
        last = self.out_dir / LAST_CHECKPOINT
        if last.is_file() and self.epoch == 0:
            self.load_checkpoint(last)
            log.info("resumed from %s after epoch %d", last, self.epoch)
        done_here = 0
        while self.epoch < epochs and (stop_after is None or done_here < stop_after):
            epoch = self.epoch
            start = time.perf_counter()
            row: dict[str, float] = {"epoch": epoch, "lr": self.optimizer.param_groups[0]["lr"]}
            row.update(self.train_epoch(epoch))
            row.update(self.validate(epoch))
            if "v_loss" in row:
                self.scheduler.step(row["v_loss"])
            row["seconds"] = time.perf_counter() - start
            self.history.append(row)
            self.epoch = epoch + 1
            done_here += 1
            if _is_main_process():
                self.save_checkpoint(last)
                if self.epoch % self.config.checkpoint_every == 0 or self.epoch == epochs:
                    self.save_checkpoint(self.out_dir / epoch_checkpoint_name(epoch))
                self.write_metrics_csv()
            log.info("epoch %d: %s", epoch, {k: round(v, 4) for k, v in row.items()})
        return self.history

    # ------------------------------------------------------------------ state

    def save_checkpoint(self, path: str | Path) -> None:
        """Everything an exact resume needs, written atomically; weights under ``net.`` (§1)."""
        payload = {
            "epoch": self.epoch,
            "state_dict": {LIGHTNING_PREFIX + k: v for k, v in self.model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": _rng_state(),
            "history": self.history,
            "config": _plain(asdict(self.config)),
        }
        with atomic_path(path) as tmp:
            torch.save(payload, tmp)

    def can_resume_from(self, path: str | Path) -> bool:
        """Whether ``path`` is an unfinished run of this very configuration (worth resuming)."""
        payload = torch.load(path, map_location="cpu", weights_only=True)
        return payload.get("config") == _plain(asdict(self.config)) and payload["epoch"] < self.config.epochs

    def load_checkpoint(self, path: str | Path) -> None:
        """Restore a checkpoint written by :meth:`save_checkpoint` of the same configuration."""
        payload = torch.load(path, map_location="cpu", weights_only=True)
        if payload.get("config") != _plain(asdict(self.config)):
            raise ValueError(f"{path} was written with another configuration: {payload.get('config')}")
        state = {k[len(LIGHTNING_PREFIX):]: v for k, v in payload["state_dict"].items()}
        self.model.load_state_dict(state, strict=True)
        self.optimizer.load_state_dict(payload["optimizer"])
        self.scheduler.load_state_dict(payload["scheduler"])
        self.scaler.load_state_dict(payload["scaler"])
        _set_rng_state(payload["rng"])
        self.history = list(payload["history"])
        self.epoch = int(payload["epoch"])

    def write_metrics_csv(self) -> None:
        """One row per finished epoch (rewritten whole, atomically, so it matches the checkpoint)."""
        columns: list[str] = []
        for row in self.history:
            columns += [k for k in row if k not in columns]
        with atomic_path(self.out_dir / METRICS_CSV) as tmp, tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            writer.writerows(self.history)


def _plain(value: Any) -> Any:
    """Config as nested lists/dicts of primitives (tuples → lists), comparable after a reload."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value

