"""Fine-tuning settings (spec §7): one frozen dataclass per run, recorded in its checkpoints.

Defaults are the paper's (Adam 5e-4, weight decay 1e-8, 50 epochs, cosine to 1e-5 over 40 epochs,
batch 32, flip 0.5, rotate 0.2); the workflow builds them from the validated ``finetune:`` section,
whose schema holds the CPU-sized defaults (config/schemas/finetune.yaml).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from eolabels.finetune.tasks import task


@dataclass(frozen=True)
class FinetuneConfig:
    """One fine-tuning run: task, model, encoder handling, schedule, augmentation, evaluation."""

    task: str = "dw"
    framework: str = "deeplabv3plus"
    encoder_name: str = "resnet50"
    # extra keyword arguments of the smp architecture, as sorted (name, value) pairs (hashable)
    model_kwargs: tuple[tuple[str, Any], ...] = ()
    modality: str = "s2"
    in_channels: int = 13
    frozen: bool = False  # the authors' ``efix``: encoder parameters get no gradient
    freeze_bn: bool = False  # also keep the frozen encoder's BN statistics (the authors' do update)
    epochs: int = 50
    batch_size: int = 32
    test_batch_size: int = 100
    lr: float = 5e-4
    final_lr: float = 1e-5
    cosine_epochs: int = 40
    weight_decay: float = 1e-8
    crop_size: int | None = 496
    flip_p: float = 0.5
    rotate_p: float = 0.2
    drop_last_test: bool = False  # the authors' test loaders drop the last incomplete batch
    eval_every: int = 1  # test-set metrics every k epochs (and always after the last)
    amp: bool = True  # CUDA only
    num_workers: int = 0
    max_batches_per_epoch: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        task(self.task)  # an unknown task fails here
        if self.epochs < 1 or self.batch_size < 1 or self.test_batch_size < 1 or self.eval_every < 1:
            raise ValueError("epochs, batch sizes and eval_every must be >= 1")
        if self.freeze_bn and not self.frozen:
            raise ValueError("freeze_bn applies to a frozen encoder; set frozen=True or freeze_bn=False")

    @property
    def classes(self) -> int:
        return task(self.task).classes

    @property
    def ignore_index(self) -> int | None:
        return task(self.task).ignore_index


def cosine_factor(epoch: int, lr: float, final_lr: float, period: int) -> float:
    """The LambdaLR factor of §7: lr(e)/lr = [final + (lr − final)(1 + cos(πe/T))/2]/lr for e < T,
    final/lr afterwards (stepped once per epoch)."""
    if epoch >= period:
        return final_lr / lr
    return (final_lr + (lr - final_lr) * (1.0 + math.cos(math.pi * epoch / period)) / 2.0) / lr
