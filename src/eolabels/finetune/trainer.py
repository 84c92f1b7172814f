"""Fine-tuning on the shared training layer (spec §7): the reference's Lightning module as hooks.

What decides the numbers is reproduced: the smp model of the task with the source's encoder,
Adam over all parameters (lr 5e-4, weight decay 1e-8), the cosine LambdaLR stepped once per epoch,
CE + Dice ignoring 255 (none on DFC2020), the frozen encoder that still updates its BN statistics,
and the test set scored every epoch as the validation set (``--validation 0``).  The authors' test
loaders drop the last incomplete batch; here every test tile is scored unless ``drop_last_test``.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, RandomSampler

from eolabels.cromss.losses import finetune_loss
from eolabels.finetune.encoders import EncoderSource, encoder_norm_layers, freeze_encoder, load_source
from eolabels.finetune.settings import FinetuneConfig, cosine_factor
from eolabels.finetune.tasks import SCORES
from eolabels.metrics import SegmentationMetrics
from eolabels.models import create_model, forward_whole_tiles
from eolabels.training import (
    Trainer, evaluation_shard, is_distributed, seed_everything, seed_worker, sum_over_processes,
)

log = logging.getLogger(__name__)
# last.ckpt at most every 30 s: a CPU-sized run lasts seconds (its row resumes at the run through
# result.json), a paper-sized one loses at most 30 s of a killed run
CHECKPOINT_INTERVAL_S = 30.0


def build_model(config: FinetuneConfig) -> nn.Module:
    """The task's smp model through the one builder (random weights; the encoder is loaded after)."""
    return create_model(config.framework, encoder_name=config.encoder_name, in_channels=config.in_channels,
                        classes=config.classes, **dict(config.model_kwargs))


def predict(model: nn.Module, image: Tensor, autocast: Any = None) -> Tensor:
    """Argmax class ids of ``image`` (B, C, H, W) for any H, W (mirrored to a multiple of 32)."""
    with autocast if autocast is not None else torch.no_grad():
        (logits,) = forward_whole_tiles(model, image)
    return logits.float().argmax(dim=1)


class FinetuneTrainer(Trainer):
    """Fine-tunes one model on ``train_set`` and scores it on ``test_set`` (``metrics.csv`` per epoch)."""

    def __init__(self, config: FinetuneConfig, train_set: Dataset, test_set: Dataset,
                 source: EncoderSource | None = None, out_dir: str | Path | None = None,
                 device: str = "auto", progress: bool = True) -> None:
        self.source = source or EncoderSource("random")
        self.train_set, self.test_set = train_set, test_set
        self.loaded_tensors = 0
        seed_everything(config.seed)
        super().__init__(config, epochs=config.epochs, out_dir=out_dir, checkpoint_every=config.epochs,
                         amp=config.amp, device=device, progress=progress,
                         checkpoint_interval_s=CHECKPOINT_INTERVAL_S)
        self.last_scores: dict[str, Any] = {}

    # ------------------------------------------------------------------ hooks

    def configure_model(self) -> nn.Module:
        model = build_model(self.config)
        self.loaded_tensors = load_source(model.encoder, self.source, self.config.modality)
        if self.config.frozen:
            freeze_encoder(model)
        return model

    def configure_optimizer(self) -> torch.optim.Optimizer:
        # all parameters, as the reference: frozen ones have no gradient, so Adam leaves them alone
        return torch.optim.Adam(self.model.parameters(), lr=self.config.lr, weight_decay=self.config.weight_decay)

    def configure_scheduler(self) -> torch.optim.lr_scheduler.LambdaLR:
        c = self.config
        return torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda epoch: cosine_factor(epoch, c.lr, c.final_lr, c.cosine_epochs))

    def train_mode(self) -> None:
        self.network.train()
        if self.config.freeze_bn:
            for layer in encoder_norm_layers(self.model):
                layer.eval()

    def _loader(self, dataset: Dataset, batch_size: int, epoch: int, shuffle: bool, drop_last: bool) -> DataLoader:
        generator = torch.Generator().manual_seed(self.config.seed * 100_003 + epoch)
        if is_distributed():
            sampler: Any = DistributedSampler(dataset, shuffle=shuffle, seed=self.config.seed, drop_last=drop_last)
            sampler.set_epoch(epoch)
        else:
            sampler = RandomSampler(dataset, generator=generator) if shuffle else None
        return DataLoader(dataset, batch_size=batch_size, sampler=sampler, drop_last=drop_last,
                          num_workers=self.config.num_workers, worker_init_fn=seed_worker, generator=generator,
                          pin_memory=self.device.type == "cuda")

    def train_batches(self, epoch: int) -> tuple[Iterable[dict[str, Tensor]], int]:
        loader = self._loader(self.train_set, self.config.batch_size, epoch, shuffle=True, drop_last=False)
        limit = self.config.max_batches_per_epoch
        total = len(loader) if limit is None else min(limit, len(loader))
        return itertools.islice(loader, total), total

    def logits(self, image: Tensor) -> Tensor:
        with self.autocast():
            return self.network(image.to(self.device, non_blocking=True)).float()

    def predict(self, image: Tensor, model: nn.Module | None = None) -> Tensor:
        """Class ids of whole tiles: mirrored up to a multiple of 32 (the deepest encoder stride) and
        cropped back, so tiles of any size (510-px DW train tiles, small synthetic ones) are scored."""
        return predict(model or self.network, image.to(self.device, non_blocking=True), self.autocast())

    def training_step(self, batch: dict[str, Tensor], epoch: int) -> tuple[Tensor, dict[str, float]] | None:
        if batch["image"].shape[0] < 2:
            return None  # BN cannot train on one sample (pooled 1×1 features); the reference never sees one
        labels = batch["label"].to(self.device, non_blocking=True)
        total, ce, dice = finetune_loss(self.logits(batch["image"]), labels, self.config.ignore_index)
        return total, {"tr_loss": total.item(), "tr_ce": ce.item(), "tr_dice": dice.item()}

    @torch.no_grad()
    def evaluate(self, dataset: Dataset | None = None) -> dict[str, Any]:
        """Scores over the whole test set from one summed confusion matrix (§8)."""
        dataset = self.test_set if dataset is None else dataset
        self.network.eval()
        metrics = SegmentationMetrics(self.config.classes, ignore_index=self.config.ignore_index)
        batch_size = self.config.test_batch_size
        if self.config.drop_last_test and len(dataset) < batch_size:  # type: ignore[arg-type]
            raise ValueError(f"drop_last_test with {len(dataset)} test tiles and a test batch of {batch_size} "
                             "would score nothing")
        if self.config.drop_last_test:  # the authors' loader, per process as Lightning shards it
            loader = self._loader(dataset, batch_size, 0, shuffle=False, drop_last=True)
        else:  # every tile exactly once: each process scores every world-th one, no padding repeats
            # its own generator: scoring must not draw from the training's random stream
            loader = DataLoader(evaluation_shard(dataset), batch_size=batch_size, num_workers=self.config.num_workers,
                                generator=torch.Generator())
        model = self.evaluation_model()  # a process may hold no tile: no collective forward
        for batch in loader:
            metrics.update(batch["label"], self.predict(batch["image"], model).cpu())
        metrics.matrix = sum_over_processes(torch.from_numpy(metrics.matrix).to(self.device)).cpu().numpy()
        if metrics.matrix.sum() == 0:
            raise ValueError("the test split has no labelled pixel: nothing to score")
        return metrics.compute()

    def validate(self, epoch: int) -> dict[str, float]:
        if (epoch + 1) % self.config.eval_every and epoch + 1 != self.epochs:
            return {}
        self.last_scores = self.evaluate()
        return {f"test_{k}": float(self.last_scores[k]) for k in SCORES}
