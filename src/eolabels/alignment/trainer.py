"""Training one scale network on the shared training layer, and its checkpoint (spec §4.3, §5.c).

:class:`ScaleTrainer` fills in the hooks of :class:`eolabels.training.Trainer`: the network from the
model builder (``alignnet``), Adam with the learning rate halved once (the reference halves at 25 % of
its run), batches of fresh training pairs (one generator per step, seeded by ``(seed, step)``, so a
resumed run draws the same pairs), and the masked balanced loss with deep-supervision coefficients.
A trained network is saved with what the chain needs to use it safely: its scale, bands and their
scaling, map encoding and sizes (:class:`ScaleNetwork`); loading checks them.
"""

from __future__ import annotations

import math
import os
import pickle
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from eolabels.alignment.channels import BandScaler, MapEncoder
from eolabels.alignment.loss import displacement_loss, level_coefficients, segmentation_loss
from eolabels.alignment.network import AlignNet, output_size
from eolabels.alignment.pairs import PairSampler
from eolabels.atomic import atomic_path
from eolabels.models import create_model
from eolabels.training import Trainer

FORMAT = "eolabels.alignment.scale_network/1"
SEGMENTATION_WEIGHTS = (0.1, 1.0)  # valid (fill) and boundary (edge) channels of the true map (§4.3)


@dataclass(frozen=True)
class NetworkSettings:
    """Architecture of a scale network (§4.3); CPU-sized defaults (config/schemas/alignment.yaml)."""

    pool_count: int = 2
    image_base: int = 16
    map_base: int = 8
    common_base: int = 24
    segmentation: bool = False


@dataclass(frozen=True)
class ScaleTrainSettings:
    """Recipe of one scale network's training (the same at every scale and round)."""

    steps: int = 300
    batch_size: int = 8
    learning_rate: float = 1e-3
    halve_lr_at: float = 0.25
    input_size: int = 76
    amplitude_px: float = 2.0
    correlation_px: float = 16.0
    augment: bool = True
    steps_per_epoch: int = 100
    displacement_coefficient: float = 100.0
    segmentation_coefficient: float = 50.0


@dataclass(frozen=True)
class ScaleRun:
    """What one training run is: its scale, recipe and architecture (recorded in checkpoints)."""

    scale: int
    train: ScaleTrainSettings
    network: NetworkSettings


class ScaleTrainer(Trainer):
    """``train.steps`` Adam steps on fresh pairs, in epochs of ``steps_per_epoch`` (checkpoints)."""

    scheduler_interval = "step"

    def __init__(self, run: ScaleRun, sampler: PairSampler, image_channels: int, *, seed: int,
                 out_dir: str | Path | None = None, device: str = "cpu", progress: bool = True) -> None:
        self.sampler, self.image_channels, self.seed = sampler, image_channels, seed
        torch.manual_seed(seed)  # the network's initialisation
        epochs = math.ceil(run.train.steps / run.train.steps_per_epoch)
        super().__init__(run, epochs=epochs, out_dir=out_dir, device=device, progress=progress)

    def configure_model(self) -> nn.Module:
        return build_network(self.image_channels, self.sampler.encoder.channels, self.config.network)

    def configure_optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.model.parameters(), lr=self.config.train.learning_rate)

    def configure_scheduler(self) -> torch.optim.lr_scheduler.LRScheduler:
        halve = round(self.config.train.halve_lr_at * self.config.train.steps)
        return torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda step: 0.5 if step >= halve else 1.0)

    def progress_label(self, epoch: int) -> str:
        return f"scale {self.config.scale} epoch {epoch}"

    def train_batches(self, epoch: int) -> tuple[Iterator[tuple[int, dict[str, Tensor]]], int]:
        t = self.config.train
        steps = range(epoch * t.steps_per_epoch, min((epoch + 1) * t.steps_per_epoch, t.steps))
        batches = ((s, self.sampler.batch(np.random.default_rng([self.seed, s]), t.batch_size)) for s in steps)
        return batches, len(steps)

    def training_step(self, batch: tuple[int, dict[str, Tensor]], epoch: int) -> tuple[Tensor, dict[str, float]]:
        step, data = batch
        t = self.config.train
        data = {k: v.to(self.device) for k, v in data.items()}
        out = self.network(data["image"], data["map"])
        coefficients = level_coefficients(step, t.steps, len(out["displacement"]))
        target = data["target"] / t.amplitude_px * 0.5  # network units: the amplitude is 0.5 (§4.3)
        disp = displacement_loss(out["displacement"], target, data["weights"], coefficients)
        loss = t.displacement_coefficient * disp
        parts = {"displacement_loss": disp.item()}
        if "segmentation" in out:
            seg = segmentation_loss(out["segmentation"], data["truth_map"], SEGMENTATION_WEIGHTS, coefficients)
            loss = loss + t.segmentation_coefficient * seg
            parts["segmentation_loss"] = seg.item()
        with torch.no_grad():
            px = (out["displacement"][0] - target).norm(dim=1) * 2 * t.amplitude_px
            w = data["weights"]
            parts["weighted_epe_px"] = float((px * w).sum() / w.sum().clamp_min(1e-12))
        return loss, parts


@dataclass
class ScaleNetwork:
    """A trained scale network with what using it needs: scale (downsampling factor), image bands and
    their scaling, map encoding, amplitude and sizes."""

    model: AlignNet
    scale: int
    scaler: BandScaler
    encoder: MapEncoder
    network: NetworkSettings
    amplitude_px: float
    input_size: int

    @property
    def output_size(self) -> int:
        return output_size(self.input_size, self.network.pool_count)

    def save(self, path: str | os.PathLike[str]) -> None:
        state = {
            "format": FORMAT, "scale": self.scale, "scaler": asdict(self.scaler), "encoder": asdict(self.encoder),
            "network": asdict(self.network), "amplitude_px": self.amplitude_px, "input_size": self.input_size,
            "image_channels": len(self.scaler.bands), "state_dict": self.model.state_dict(),
        }
        with atomic_path(path) as tmp:
            torch.save(state, tmp)


def build_network(image_channels: int, map_channels: int, network: NetworkSettings) -> AlignNet:
    return create_model("alignnet", image_channels=image_channels, map_channels=map_channels,
                        pool_count=network.pool_count, image_base=network.image_base, map_base=network.map_base,
                        common_base=network.common_base, seg_channels=2 if network.segmentation else 0)


def load_scale_network(path: str | os.PathLike[str], *, scale: int | None = None,
                       bands: Sequence[str] | None = None, device: str = "cpu") -> ScaleNetwork:
    """A :class:`ScaleNetwork` saved by :meth:`ScaleNetwork.save`; a file of another scale or band set
    than asked for, or no scale network at all, fails naming the file."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as err:
        raise ValueError(f"{path}: not a readable alignment checkpoint ({err})") from err
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"{path}: not an alignment scale-network checkpoint (format {FORMAT})")
    if scale is not None and state["scale"] != scale:
        raise ValueError(f"{path}: checkpoint of the scale-{state['scale']} network, the chain asks for scale {scale}")
    scaler = BandScaler(**{k: tuple(v) if isinstance(v, list) else v for k, v in state["scaler"].items()})
    if bands is not None and tuple(bands) != scaler.bands:
        raise ValueError(f"{path}: network trained on bands {list(scaler.bands)}, asked for {list(bands)}")
    encoder = MapEncoder(**state["encoder"])
    network = NetworkSettings(**state["network"])
    model = build_network(state["image_channels"], encoder.channels, network)
    try:
        model.load_state_dict(state["state_dict"])
    except RuntimeError as err:
        raise ValueError(f"{path}: weights do not fit the recorded architecture ({err})") from err
    return ScaleNetwork(model.to(device).eval(), state["scale"], scaler, encoder, network, state["amplitude_px"],
                        state["input_size"])
