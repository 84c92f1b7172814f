"""A small U-Net on Sentinel-2 tiles, trained on noisy labels: the network the density audit and the
self-denoising rounds analyse (spec netsimilarity.md §5.a, §5.b).

CPU-sized on purpose: the similarity stages train it several times per run.  Its module names
(``encoder``, ``decoder`` as a ``ModuleList`` of blocks, ``head``) are what the parameter subsets of
``eolabels.similarity.jacobian`` look for.  It is registered with ``eolabels.models.create_model`` as
``smallunet`` and trained on the shared training layer (:class:`SegmenterTrainer`).  A checkpoint
stores the builder name and arguments, the weights and the input normalisation, so any stage can
rebuild the exact network (``load_segmenter``).
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import Tensor, nn

from eolabels.atomic import atomic_path
from eolabels.device import resolve_device
from eolabels.metrics import SegmentationMetrics
from eolabels.models import create_model
from eolabels.training import Trainer

UNLABELLED = 255


def _conv_block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1),
        nn.BatchNorm2d(c_out),
        nn.ReLU(),
        nn.Conv2d(c_out, c_out, 3, padding=1),
        nn.BatchNorm2d(c_out),
        nn.ReLU(),
    )


class SmallUNet(nn.Module):
    """U-Net with ``depth`` poolings, ``width * 2^l`` channels at level l, a 1x1 conv ``head``."""

    def __init__(self, in_channels: int, classes: int, width: int = 16, depth: int = 2) -> None:
        super().__init__()
        widths = [width * 2**level for level in range(depth + 1)]
        self.encoder = nn.ModuleList(
            [_conv_block(in_channels, widths[0])]
            + [_conv_block(widths[i], widths[i + 1]) for i in range(depth)]
        )
        self.decoder = nn.ModuleList(
            [_conv_block(widths[i + 1] + widths[i], widths[i]) for i in reversed(range(depth))]
        )
        self.head = nn.Conv2d(widths[0], classes, 1)

    def forward(self, x: Tensor) -> Tensor:
        skips = []
        h = x
        for level, block in enumerate(self.encoder):
            h = block(h if level == 0 else nn.functional.max_pool2d(h, 2))
            skips.append(h)
        for block, skip in zip(self.decoder, reversed(skips[:-1])):
            up = nn.functional.interpolate(h, size=skip.shape[-2:], mode="nearest")
            h = block(torch.cat([up, skip], dim=1))
        return self.head(h)


@dataclass(frozen=True)
class TrainSettings:
    """Recipe of one training (spec §5.b: the same recipe every round, seed offset per round);
    defaults are the schema's (config/schemas/similarity.yaml, ``train``)."""

    width: int = 16
    depth: int = 2
    steps: int = 300
    batch_size: int = 8
    crop_size: int = 48
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4


@dataclass(frozen=True)
class BandNormaliser:
    """Per-band standardisation of S2 L1C digital numbers, statistics from the training tiles."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def fit(cls, images: np.ndarray) -> BandNormaliser:
        """Statistics of ``images`` (N x bands x H x W)."""
        values = np.asarray(images, dtype=np.float64)
        std = values.std(axis=(0, 2, 3))
        mean = values.mean(axis=(0, 2, 3))
        return cls(tuple(map(float, mean)), tuple(map(float, np.maximum(std, 1e-6))))

    def __call__(self, images: np.ndarray) -> Tensor:
        """N x bands x H x W float32 tensor; a band count other than the training one is an error."""
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[1] != len(self.mean):
            raise ValueError(
                f"images of shape {images.shape} do not have the {len(self.mean)} bands the "
                "network was trained on"
            )
        mean = np.asarray(self.mean)[None, :, None, None]
        std = np.asarray(self.std)[None, :, None, None]
        return torch.from_numpy(((images - mean) / std).astype(np.float32))


class Network(Protocol):
    """What the audit and ``predict_probabilities`` use of a trained network: the module (N x bands x H
    x W to class logits, with the module names of the parameter subsets), its input normalisation
    (raw tiles to a float tensor) and its class count.  ``Segmenter`` and the CromSS branches of
    ``eolabels.similarity.pretrained`` both are one."""

    model: nn.Module
    classes: int

    @property
    def normaliser(self) -> Callable[[np.ndarray], Tensor]: ...


@dataclass
class Segmenter:
    """A trained network with what rebuilding and feeding it needs.

    The stages only use ``model`` (any ``nn.Module`` mapping N x bands x H x W to class logits
    N x C x H x W, with the module names of the parameter subsets) and ``normaliser``; ``save`` and
    ``load_segmenter`` are for ``SmallUNet``.
    """

    model: nn.Module
    normaliser: BandNormaliser
    settings: TrainSettings
    classes: int

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write atomically: builder arguments, weights, normalisation."""
        state = {
            "builder": "SmallUNet",
            "in_channels": len(self.normaliser.mean),
            "classes": self.classes,
            "settings": asdict(self.settings),
            "normaliser": asdict(self.normaliser),
            "state_dict": self.model.state_dict(),
        }
        with atomic_path(path) as tmp:
            torch.save(state, tmp)


def load_segmenter(path: str | os.PathLike[str], device: str = "cpu") -> Segmenter:
    """Rebuild a ``Segmenter`` from ``Segmenter.save`` on ``device``; anything else fails naming
    the file."""
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")
        settings = TrainSettings(**state["settings"])
        model = create_model(state["builder"], in_channels=state["in_channels"], classes=state["classes"],
                             width=settings.width, depth=settings.depth)
        model.load_state_dict(state["state_dict"])
        normaliser = BandNormaliser(**{k: tuple(v) for k, v in state["normaliser"].items()})
    except (OSError, RuntimeError, KeyError, TypeError, pickle.UnpicklingError) as err:
        raise ValueError(f"{Path(path)}: not a SmallUNet checkpoint ({err})") from err
    return Segmenter(model.to(resolve_device(device)).eval(), normaliser, settings, state["classes"])


def _random_batch(
    rng: np.random.Generator, images: Tensor, labels: Tensor, batch_size: int, crop: int
) -> tuple[Tensor, Tensor]:
    """Random crops with random flips and 90-degree rotations."""
    n, _, height, width = images.shape
    crop = min(crop, height, width)
    xs, ys = [], []
    for _ in range(batch_size):
        i = int(rng.integers(n))
        top, left = int(rng.integers(height - crop + 1)), int(rng.integers(width - crop + 1))
        x = images[i, :, top : top + crop, left : left + crop]
        y = labels[i, top : top + crop, left : left + crop]
        k = int(rng.integers(4))
        x, y = torch.rot90(x, k, (1, 2)), torch.rot90(y, k, (0, 1))
        if rng.random() < 0.5:
            x, y = x.flip(2), y.flip(1)
        xs.append(x)
        ys.append(y)
    return torch.stack(xs), torch.stack(ys)


class SegmenterTrainer(Trainer):
    """``settings.steps`` Adam(W) steps with cross-entropy on random crops and a per-step cosine
    schedule, as one epoch without validation or checkpoints; a crop with no labelled pixel is
    drawn but not stepped on (nor scheduled)."""

    scheduler_interval = "step"

    def __init__(self, settings: TrainSettings, images: Tensor, labels: Tensor, classes: int, *,
                 seed: int, device: str = "cpu", progress: bool = True) -> None:
        self.images, self.labels, self.classes = images, labels, classes
        torch.manual_seed(seed)  # the network's initialisation
        self.rng = np.random.default_rng(seed)  # the crops
        super().__init__(settings, epochs=1, device=device, progress=progress)

    def configure_model(self) -> nn.Module:
        return create_model("smallunet", in_channels=self.images.shape[1], classes=self.classes,
                            width=self.config.width, depth=self.config.depth)

    def configure_optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(
            self.model.parameters(), lr=self.config.learning_rate, weight_decay=self.config.weight_decay
        )

    def configure_scheduler(self) -> torch.optim.lr_scheduler.LRScheduler:
        return torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=self.config.steps)

    def progress_label(self, epoch: int) -> str:
        return "train U-Net"

    def train_batches(self, epoch: int) -> tuple[Iterator[tuple[Tensor, Tensor]], int]:
        c = self.config
        batches = (_random_batch(self.rng, self.images, self.labels, c.batch_size, c.crop_size) for _ in range(c.steps))
        return batches, c.steps

    def training_step(self, batch: tuple[Tensor, Tensor], epoch: int) -> tuple[Tensor, dict[str, float]] | None:
        xb, yb = (t.to(self.device) for t in batch)
        if not (yb != UNLABELLED).any():
            return None
        loss = nn.functional.cross_entropy(self.network(xb), yb, ignore_index=UNLABELLED)
        return loss, {"loss": loss.item()}


def train_segmenter(
    images: np.ndarray,
    labels: np.ndarray,
    classes: int,
    settings: TrainSettings = TrainSettings(),
    seed: int = 0,
    normaliser: BandNormaliser | None = None,
    progress: bool = True,
    device: str = "cpu",
) -> Segmenter:
    """Fit a fresh ``SmallUNet`` (seeded) to ``labels`` (N x H x W, 255 ignored) with AdamW and
    cross-entropy on random crops; ``normaliser`` defaults to the statistics of ``images``.
    The network stays on ``device`` (``auto``: CUDA when present)."""
    normaliser = normaliser or BandNormaliser.fit(images)
    x = normaliser(images)
    y = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    if y.shape != (x.shape[0], *x.shape[2:]):
        raise ValueError(f"labels of shape {tuple(y.shape)} do not match images {tuple(x.shape)}")
    trainer = SegmenterTrainer(settings, x, y, classes, seed=seed, device=device, progress=progress)
    trainer.fit()
    return Segmenter(trainer.model.eval(), normaliser, settings, classes)


def predict_probabilities(segmenter: Network, images: np.ndarray, batch_size: int = 8) -> Tensor:
    """Softmax probabilities, N x C x H x W (eval mode, whole tiles)."""
    x = segmenter.normaliser(images)
    segmenter.model.eval()
    device = next(segmenter.model.parameters()).device
    with torch.no_grad():
        return torch.cat(
            [
                torch.softmax(segmenter.model(x[i : i + batch_size].to(device)), dim=1).cpu()
                for i in range(0, x.shape[0], batch_size)
            ]
        )


def evaluate_segmenter(segmenter: Network, images: np.ndarray, truth: np.ndarray) -> dict:
    """OA, AA, mIoU, mF1 (``eolabels.metrics``) of the arg-max prediction against ``truth``."""
    scores = SegmentationMetrics(segmenter.classes)
    scores.update(truth, predict_probabilities(segmenter, images).argmax(dim=1))
    return scores.compute()
