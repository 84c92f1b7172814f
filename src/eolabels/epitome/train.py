"""Epitome training: SGD on the tempered mixture likelihood with location promotion (spec §3–§3.2).

The math of one iteration lives in pure functions (temperature, promotion counter, promoted loss,
clamps, diversification); :class:`EpitomeTrainer` holds the real state (parameters, Adam, promotion
counter, random generator, history) and writes resumable checkpoints.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor
from tqdm.auto import tqdm

from eolabels.atomic import atomic_path
from eolabels.epitome.model import GaussianEpitome, Method, log_joint
from eolabels.epitome.patches import crop, sample_origins

# Supplement §3.1: 11×11 … 31×31 (the notebook's range starts at 21, spec §3 [code]).
PAPER_PATCH_SIZES = tuple(range(11, 32, 2))


@dataclass(frozen=True)
class TrainConfig:
    """Training hyper-parameters; defaults are the paper's aerial settings (spec §3 table)."""

    patch_sizes: tuple[int, ...] = PAPER_PATCH_SIZES
    batch_size: int = 256
    learning_rate: float = 0.003
    temperature_reference: float = 11.0
    ivar_bounds: tuple[float, float] = (1.0, 100.0)
    prior_bound: float = 4.0
    promotion_threshold: float = 1e-8
    promotion_reset_fraction: float = 0.95
    promotion_penalty: float = 1e4  # finite, not −inf, as in the initial notebook (spec §3.1)
    diversify: bool = False
    diversify_fraction: float = 0.25
    method: Method = "auto"
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.patch_sizes or any(w % 2 != 1 or w < 1 for w in self.patch_sizes):
            raise ValueError(f"patch sizes must be positive odd integers, got {self.patch_sizes}")


def patch_temperature(patch_size: int, reference: float = 11.0) -> float:
    """T = (w / 11)² (spec §3): divides the whole log joint, prior included (§3.2)."""
    return (patch_size / reference) ** 2


def position_posterior_rows(tempered_log_joint: Tensor) -> Tensor:
    """Softmax over the H×W positions separately for every (layer, patch) row (spec §3), L×B×H×W."""
    layers, batch, height, width = tempered_log_joint.shape
    return torch.softmax(tempered_log_joint.reshape(layers, batch, -1), dim=-1).view_as(tempered_log_joint)


def update_promotion_counter(
    counter: Tensor, rows: Tensor, threshold: float = 1e-8, reset_fraction: float = 0.95
) -> tuple[Tensor, Tensor, bool]:
    """One location-promotion update (spec §3.1); returns (counter, mask, reset).

    The counter (H×W, shared by all layers) grows by the mean posterior over all L·B rows; the mask
    marks positions whose counter exceeds ``threshold`` after this increment; once more than
    ``reset_fraction`` of positions are masked, counter and mask are cleared.
    """
    # per-(layer, patch) rows averaged over L·B, one counter for all layers: initial notebook (spec §3.1)
    counter = counter + rows.detach().mean(dim=(0, 1))
    mask = counter > threshold
    if mask.float().mean().item() > reset_fraction:
        return torch.zeros_like(counter), torch.zeros_like(mask), True
    return counter, mask, False


def promoted_mixture_loss(tempered_log_joint: Tensor, mask: Tensor, penalty: float = 1e4) -> Tensor:
    """mean_b −logsumexp_{l,u,v}(E − penalty·M) (spec §3): masked positions leave the mixture."""
    shifted = tempered_log_joint - penalty * mask.to(tempered_log_joint.dtype)
    return -torch.logsumexp(shifted.transpose(0, 1).flatten(1), dim=1).mean()


def worst_modelled(tempered_log_joint: Tensor, fraction: float = 0.25) -> Tensor:
    """Keep the ``fraction`` of patches with the smallest log-likelihood (diversification, spec §3)."""
    batch = tempered_log_joint.shape[1]
    likelihood = torch.logsumexp(tempered_log_joint.detach().transpose(0, 1).flatten(1), dim=1)
    keep = torch.argsort(likelihood)[: max(1, int(batch * fraction))]
    return tempered_log_joint[:, keep]


@torch.no_grad()
def clamp_epitome_(
    epitome: GaussianEpitome, ivar_bounds: tuple[float, float] = (1.0, 100.0), prior_bound: float = 4.0
) -> None:
    """In place, after every step (spec §3): λ to [1, 100]; π centred over all layers, then clipped."""
    epitome.ivar.clamp_(*ivar_bounds)
    epitome.prior_logits.sub_(epitome.prior_logits.mean()).clamp_(-prior_bound, prior_bound)


@dataclass
class TrainHistory:
    """Per-iteration records kept in checkpoints and used by the figures."""

    loss: list[float] = field(default_factory=list)
    patch_size: list[int] = field(default_factory=list)
    masked_fraction: list[float] = field(default_factory=list)
    resets: list[int] = field(default_factory=list)


class EpitomeTrainer:
    """Adam on (μ, λ, π) with tempering, location promotion, clamps and checkpoints (spec §3)."""

    def __init__(self, epitome: GaussianEpitome, images: Sequence[Tensor], config: TrainConfig) -> None:
        channels = epitome.shape[1]
        for index, image in enumerate(images):
            if image.dim() != 3 or image.shape[0] != channels:
                raise ValueError(f"image {index} must be {channels}×H×W, got {tuple(image.shape)}")
            if min(image.shape[-2:]) < max(config.patch_sizes):
                raise ValueError(f"image {index} is smaller than the largest patch {max(config.patch_sizes)}")
        self.epitome = epitome
        self.images = list(images)
        self.shapes = [tuple(image.shape[-2:]) for image in self.images]
        self.config = config
        self.optimizer = torch.optim.Adam(epitome.parameters(), lr=config.learning_rate)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.counter = torch.zeros_like(epitome.mean[0, 0]).detach()
        self.iteration = 0
        self.history = TrainHistory()

    def step(self) -> float:
        """One iteration of spec §3; returns the loss."""
        cfg = self.config
        size_index = int(torch.randint(len(cfg.patch_sizes), (1,), generator=self.generator))
        patch_size = cfg.patch_sizes[size_index]
        origins = sample_origins(self.shapes, patch_size, cfg.batch_size, self.generator)
        patches = crop(self.images, origins).to(self.epitome.mean)
        energy = log_joint(self.epitome.fields(patch_size), patches, method=cfg.method)
        energy = energy / patch_temperature(patch_size, cfg.temperature_reference)
        if cfg.diversify:
            energy = worst_modelled(energy, cfg.diversify_fraction)
        self.counter, mask, reset = update_promotion_counter(
            self.counter,
            position_posterior_rows(energy),
            cfg.promotion_threshold,
            cfg.promotion_reset_fraction,
        )
        loss = promoted_mixture_loss(energy, mask, cfg.promotion_penalty)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        clamp_epitome_(self.epitome, cfg.ivar_bounds, cfg.prior_bound)
        self.iteration += 1
        value = float(loss.detach())
        self.history.loss.append(value)
        self.history.patch_size.append(patch_size)
        self.history.masked_fraction.append(float(mask.float().mean()))
        if reset:
            self.history.resets.append(self.iteration)
        return value

    def train(
        self,
        iterations: int,
        checkpoint_path: str | Path | None = None,
        checkpoint_every: int = 1000,
        progress: bool = True,
    ) -> TrainHistory:
        """Run until ``iterations`` in total (a resumed trainer continues), checkpointing periodically."""
        bar = tqdm(total=iterations, initial=self.iteration, disable=not progress, desc="epitome")
        while self.iteration < iterations:
            loss = self.step()
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.3g}", masked=f"{self.history.masked_fraction[-1]:.2f}")
            if checkpoint_path is not None and self.iteration % checkpoint_every == 0:
                self.save_checkpoint(checkpoint_path)
        bar.close()
        if checkpoint_path is not None:
            self.save_checkpoint(checkpoint_path)
        return self.history

    def state_dict(self) -> dict:
        return {
            "epitome": self.epitome.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "counter": self.counter.clone(),
            "iteration": self.iteration,
            "generator": self.generator.get_state(),
            "history": asdict(self.history),
            "config": asdict(self.config),
        }

    def load_state_dict(self, state: dict) -> None:
        if state["config"] != asdict(self.config):
            raise ValueError("checkpoint was written with a different TrainConfig")
        self.epitome.load_state_dict(state["epitome"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.counter = state["counter"].to(self.counter)
        self.iteration = int(state["iteration"])
        self.generator.set_state(state["generator"])
        self.history = TrainHistory(**state["history"])

    def save_checkpoint(self, path: str | Path) -> None:
        """Atomic write, so a killed run never leaves a truncated checkpoint to resume from."""
        with atomic_path(path) as tmp:
            torch.save(self.state_dict(), tmp)

    def load_checkpoint(self, path: str | Path) -> None:
        self.load_state_dict(torch.load(Path(path), map_location="cpu", weights_only=False))
