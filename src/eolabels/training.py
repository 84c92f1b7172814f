"""The training layer every stage shares: exact resume, atomic checkpoints, DDP, metrics CSV, progress.

A stage subclasses :class:`Trainer` and fills in named hooks (the pattern of torchgeo's ``BaseTask``):
``configure_model``, ``configure_optimizer``, ``configure_scheduler`` (called from ``__init__``),
``train_batches`` and ``training_step`` (one epoch), ``validate``.  The skeleton owns the order of
everything that decides the numbers — optimiser step, schedule step, checkpoint, RNG states — so two
stages built on it resume the same way: a run killed after epoch k and restarted from ``last.ckpt``
ends with the weights of an uninterrupted run.

Under torchrun (an initialised process group) the model is wrapped in DistributedDataParallel, and
only rank 0 writes files.
"""

from __future__ import annotations

import csv
import logging
import math
import pickle
import random
import time
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Dataset, Subset
from tqdm.auto import tqdm

from eolabels.atomic import atomic_path
from eolabels.device import resolve_device

log = logging.getLogger(__name__)
LAST_CHECKPOINT = "last.ckpt"
METRICS_CSV = "metrics.csv"
T = TypeVar("T")


# ---------------------------------------------------------------------- RNG


def seed_everything(seed: int) -> None:
    """Seed torch (all devices), numpy's and Python's global generators."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def rng_state() -> dict[str, Any]:
    """The global RNG states (torch, CUDA, numpy, Python) as tensors and primitives, so a checkpoint
    holding them loads with ``torch.load(weights_only=True)``."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
        "python": random.getstate(),
    }


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Put back what :func:`rng_state` captured (CUDA states only where CUDA is present)."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_py = state["python"]
    random.setstate((version, tuple(internal), gauss_py))


# ---------------------------------------------------------------------- DDP


def is_distributed() -> bool:
    """Whether this process belongs to an initialised process group (torchrun)."""
    return dist.is_available() and dist.is_initialized()


def is_main_process() -> bool:
    """Rank 0, or the only process: the one that writes files."""
    return not is_distributed() or dist.get_rank() == 0


def world_size() -> int:
    """The data-parallel processes of this run (1 without a process group)."""
    return dist.get_world_size() if is_distributed() else 1


def evaluation_shard(dataset: Dataset) -> Subset:
    """This process's share of an evaluation set: every world-size-th item from its rank, so each item
    is scored exactly once (a padding sampler would repeat some) and a process may get none."""
    rank = dist.get_rank() if is_distributed() else 0
    return Subset(dataset, range(rank, len(dataset), world_size()))  # type: ignore[arg-type]


def sum_over_processes(values: Tensor) -> Tensor:
    """``values`` summed over every process, in place (unchanged without a process group)."""
    if is_distributed():
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def seed_worker(worker_id: int) -> None:
    """``worker_init_fn`` of the data loaders: numpy and Python in a loader worker follow torch's
    per-worker seed, so augmentations drawn there repeat."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def wrap_distributed(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` in DistributedDataParallel (no SyncBN) under a process group, else itself."""
    if not is_distributed():
        return model
    device_ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids)


# ---------------------------------------------------------------------- files


def epoch_checkpoint_name(epoch: int) -> str:
    """File name of a kept epoch checkpoint, 0-based as Lightning's ``epoch=199.ckpt``."""
    return f"epoch={epoch:03d}.ckpt"


def save_checkpoint(path: str | Path, payload: Mapping[str, Any]) -> None:
    """``torch.save`` written atomically: a killed run never leaves a truncated checkpoint, and a
    failed write (a full disk: torch reports it without the file) raises naming ``path``, the previous
    checkpoint left whole."""
    try:
        with atomic_path(path) as tmp:
            torch.save(dict(payload), tmp)
    except (OSError, RuntimeError) as err:
        code = getattr(err, "errno", None)
        message = f"cannot write checkpoint {path}: {err}"
        raise (OSError(code, message) if code else OSError(message)) from err


class UnreadableCheckpoint(ValueError):
    """A checkpoint file that cannot be loaded (truncated by a full disk, not a checkpoint at all)."""


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """A checkpoint of :func:`save_checkpoint`, on the CPU, refusing pickled objects; an unreadable
    file raises :class:`UnreadableCheckpoint` naming it."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as err:
        raise UnreadableCheckpoint(f"cannot read checkpoint {path}: {err}") from err
    if not isinstance(payload, dict):
        raise UnreadableCheckpoint(f"cannot read checkpoint {path}: it holds a {type(payload).__name__}")
    return payload


def write_metrics_csv(path: str | Path, rows: Sequence[Mapping[str, Any]]) -> None:
    """One row per epoch, columns in order of first appearance, rewritten whole and atomically so
    the file always matches the checkpoint beside it."""
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    with atomic_path(path) as tmp, tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def plain(value: Any) -> Any:
    """Nested lists/dicts of primitives (tuples → lists): a settings record that compares equal
    after a checkpoint round trip."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def progress_bar(iterable: Iterable[T], *, desc: str, total: int | None, enabled: bool = True) -> Iterable[T]:
    """tqdm over ``iterable`` that clears itself when done (long loops show progress, DESIGN.md)."""
    return tqdm(iterable, desc=desc, total=total, disable=not enabled, leave=False)


# ---------------------------------------------------------------------- skeleton

Scheduler = torch.optim.lr_scheduler.LRScheduler | torch.optim.lr_scheduler.ReduceLROnPlateau


class Trainer:
    """A training run with named hooks; subclasses fill in what differs between stages.

    ``config`` is the stage's frozen settings dataclass; checkpoints record it, and a run resumes
    only from a checkpoint of the very same settings.

    Hooks called from ``__init__``: :meth:`configure_model`, :meth:`configure_optimizer`,
    :meth:`configure_scheduler`.  Hooks of an epoch: :meth:`train_batches`, :meth:`training_step`,
    :meth:`validate`.  ``scheduler_interval`` says when the schedule steps (after every optimiser
    step, or once per epoch after validation, with the row's ``scheduler_monitor`` value if set).

    With ``out_dir`` every finished epoch rewrites ``last.ckpt`` and ``metrics.csv`` and every
    ``checkpoint_every``-th (and the final) epoch is kept as ``epoch=<k>.ckpt``; :meth:`fit`
    resumes from ``last.ckpt``.  ``checkpoint_interval_s`` > 0 rewrites the two only when that many
    seconds have passed since they were written, on kept epochs and on the last epoch of a
    :meth:`fit` call: runs of sub-second epochs would otherwise spend a fair share of their time
    writing files.  Without it nothing is written.  Seeding is the caller's: each
    stage seeds what its reference seeds, before the model is built.
    """

    scheduler_interval: ClassVar[Literal["step", "epoch"]] = "epoch"
    scheduler_monitor: ClassVar[str | None] = None
    state_dict_prefix: ClassVar[str] = ""  # prefix of the weights' keys in a checkpoint

    def __init__(self, config: Any, *, epochs: int, out_dir: str | Path | None = None,
                 checkpoint_every: int = 1, amp: bool = False, device: str = "auto",
                 progress: bool = True, checkpoint_interval_s: float = 0.0) -> None:
        self.config = config
        self.epochs = epochs
        self.out_dir = None if out_dir is None else Path(out_dir)
        self.checkpoint_every = checkpoint_every
        self.checkpoint_interval_s = checkpoint_interval_s
        self.device = resolve_device(device)
        self.progress = progress
        self.model = self.configure_model().to(self.device)
        # ``network`` runs the steps; ``model`` is the bare module whose weights are saved
        self.network = wrap_distributed(self.model, self.device)
        self.optimizer = self.configure_optimizer()
        self.scheduler = self.configure_scheduler()
        self.use_amp = amp and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)
        self.epoch = 0  # number of completed epochs
        self.history: list[dict[str, float]] = []

    # ------------------------------------------------------------------ hooks

    def configure_model(self) -> nn.Module:
        """The freshly initialised network (from :func:`eolabels.models.create_model`)."""
        raise NotImplementedError

    def configure_optimizer(self) -> torch.optim.Optimizer:
        """The optimiser over ``self.model``'s parameters."""
        raise NotImplementedError

    def configure_scheduler(self) -> Scheduler | None:
        """The learning-rate schedule of ``self.optimizer``, or None."""
        return None

    def train_batches(self, epoch: int) -> tuple[Iterable[Any], int]:
        """The batches of one epoch and how many there are (for the progress bar)."""
        raise NotImplementedError

    def training_step(self, batch: Any, epoch: int) -> tuple[Tensor, dict[str, float]] | None:
        """The loss of one batch and the values to log (averaged over the epoch), or None to skip
        the batch without an optimiser step."""
        raise NotImplementedError

    def validate(self, epoch: int) -> dict[str, float]:
        """Validation scores of the epoch (none by default)."""
        return {}

    def train_mode(self) -> None:
        """Put the network into training mode at the start of an epoch (a stage may keep parts in eval)."""
        self.network.train()

    def progress_label(self, epoch: int) -> str:
        return f"epoch {epoch}"

    def autocast(self) -> AbstractContextManager[None]:
        """Mixed precision for the forward pass (float16, CUDA only, when asked for)."""
        return torch.autocast(self.device.type, dtype=torch.float16, enabled=self.use_amp)

    # ------------------------------------------------------------------ loop

    def optimizer_step(self, loss: Tensor) -> None:
        """Backward and one (loss-scaled) optimiser step; per-step schedules step after it."""
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.scheduler is not None and self.scheduler_interval == "step":
            self.scheduler.step()

    def train_epoch(self, epoch: int) -> dict[str, float]:
        """One pass over :meth:`train_batches`; returns the mean of each logged value."""
        self.train_mode()
        sums: dict[str, float] = {}
        n_batches = 0
        batches, total = self.train_batches(epoch)
        for batch in progress_bar(batches, desc=self.progress_label(epoch), total=total, enabled=self.progress):
            step = self.training_step(batch, epoch)
            if step is None:
                continue
            loss, parts = step
            if not math.isfinite(loss.item()):
                raise FloatingPointError(f"non-finite training loss {loss.item()} at epoch {epoch}")
            self.optimizer_step(loss)
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + v
            n_batches += 1
        return {k: v / max(n_batches, 1) for k, v in sums.items()}

    def fit(self, epochs: int | None = None, stop_after: int | None = None) -> list[dict[str, float]]:
        """Train up to ``epochs`` (default: the run's), resuming from ``last.ckpt`` if present.

        ``stop_after`` ends this call after that many epochs (a budgeted or interrupted run).
        """
        epochs = self.epochs if epochs is None else epochs
        last = None if self.out_dir is None else self.out_dir / LAST_CHECKPOINT
        if last is not None and last.is_file() and self.epoch == 0:
            try:
                self.load_checkpoint(last)
                log.info("resumed from %s after epoch %d", last, self.epoch)
            except UnreadableCheckpoint as err:  # overwritten after the first epoch
                log.warning("not resuming (%s); training from the start", err)
        done_here = 0
        written = time.monotonic()
        while self.epoch < epochs and (stop_after is None or done_here < stop_after):
            epoch = self.epoch
            start = time.perf_counter()
            row: dict[str, float] = {"epoch": epoch, "lr": self.optimizer.param_groups[0]["lr"]}
            row.update(self.train_epoch(epoch))
            row.update(self.validate(epoch))
            self._epoch_schedule_step(row)
            row["seconds"] = time.perf_counter() - start
            self.history.append(row)
            self.epoch = epoch + 1
            done_here += 1
            kept = self.epoch % self.checkpoint_every == 0 or self.epoch == epochs
            due = (kept or done_here == stop_after
                   or time.monotonic() - written >= self.checkpoint_interval_s)
            if self.out_dir is not None and is_main_process() and due:
                self.save_checkpoint(self.out_dir / LAST_CHECKPOINT)
                if kept:
                    self.save_checkpoint(self.out_dir / epoch_checkpoint_name(epoch))
                write_metrics_csv(self.out_dir / METRICS_CSV, self.history)
                written = time.monotonic()
            log.info("epoch %d: %s", epoch, {k: round(v, 4) for k, v in row.items()})
        return self.history

    def _epoch_schedule_step(self, row: Mapping[str, float]) -> None:
        if self.scheduler is None or self.scheduler_interval != "epoch":
            return
        if self.scheduler_monitor is None:
            self.scheduler.step()
        elif self.scheduler_monitor in row:
            self.scheduler.step(row[self.scheduler_monitor])

    # ------------------------------------------------------------------ state

    def config_record(self) -> Any:
        """The settings as stored in checkpoints: a resume needs the very same, and the same number
        of data-parallel processes (the effective batch), recorded when there are several."""
        record = plain(asdict(self.config))
        if is_distributed():
            record["world_size"] = world_size()
        return record

    def evaluation_model(self) -> nn.Module:
        """The bare model with rank 0's buffers (BN statistics), for evaluation passes that not every
        process may take part in (a rank whose shard is empty): forwards through the DDP wrapper
        are collectives. Every process must call it."""
        if is_distributed():
            for buffer in self.model.buffers():
                dist.broadcast(buffer, 0)
        return self.model

    def save_checkpoint(self, path: str | Path) -> None:
        """Everything an exact resume needs: weights, optimiser, schedule, scaler, RNG states, history."""
        save_checkpoint(path, {
            "epoch": self.epoch,
            "state_dict": {self.state_dict_prefix + k: v for k, v in self.model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": rng_state(),
            "history": self.history,
            "config": self.config_record(),
        })

    def can_resume_from(self, path: str | Path) -> bool:
        """Whether ``path`` is an unfinished run of this very configuration (worth resuming); an
        unreadable file (e.g. truncated by a full disk) is not, and the log says why."""
        try:
            payload = load_checkpoint(path)
        except UnreadableCheckpoint as err:
            log.warning("%s", err)
            return False
        return payload.get("config") == self.config_record() and payload.get("epoch", self.epochs) < self.epochs

    def load_checkpoint(self, path: str | Path) -> None:
        """Restore a checkpoint written by :meth:`save_checkpoint` of the same configuration."""
        payload = load_checkpoint(path)
        if payload.get("config") != self.config_record():
            raise ValueError(f"{path} was written with another configuration: {payload.get('config')}")
        prefix = self.state_dict_prefix
        self.model.load_state_dict({k[len(prefix):]: v for k, v in payload["state_dict"].items()}, strict=True)
        self.optimizer.load_state_dict(payload["optimizer"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(payload["scheduler"])
        self.scaler.load_state_dict(payload["scaler"])
        restore_rng_state(payload["rng"])
        self.history = list(payload["history"])
        self.epoch = int(payload["epoch"])
