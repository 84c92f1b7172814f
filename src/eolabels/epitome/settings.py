"""Settings of the epitome stage: one frozen dataclass per subsection of ``epitome.<dataset>``.

Fields are the keys of config/schemas/epitome.yaml, and a workflow run builds each class with
:func:`eolabels.settings.from_section` from its validated section, so the schema is the only
source of defaults there.  The dataclass defaults (for the Python API) equal the schema's; fields
the schema requires (it gives their defaults per dataset) have none here either.
tests/epitome/test_epitome_settings.py keeps both in step.
"""

from __future__ import annotations

from dataclasses import dataclass

from eolabels.epitome.topk import TopK
from eolabels.epitome.train import TrainConfig

# joint: the L layers of one mixture trained together (spec §4); individual: the paper's setting, each
# layer trained alone as a one-layer epitome, then the layers used as the components of one mixture.
LAYER_TRAINING = ("joint", "individual")
# exact: posteriors over every epitome position (the paper); topk: the exact log joint at K candidates
# per patch from a coarse-to-fine search, the rest of the subgrid standing for its blocks as a tail
# (eolabels.epitome.topk)
POSTERIORS = ("exact", "topk")


@dataclass(frozen=True, kw_only=True)
class PosteriorSettings:
    """Exact or top-K posteriors over epitome positions (shared by embedding, reconstruction and
    self-epitomic LSR); the ``topk_*`` keys only matter for ``posterior="topk"``."""

    posterior: str = "exact"
    topk_candidates: int = 256
    topk_coarse_stride: int = 4
    topk_check_patches: int = 64
    topk_tail: bool = True

    def __post_init__(self) -> None:
        if self.posterior not in POSTERIORS:
            raise ValueError(f"posterior must be one of {POSTERIORS}, got {self.posterior!r}")

    def topk(self) -> TopK | None:
        """The approximation to run, None for exact posteriors."""
        if self.posterior == "exact":
            return None
        return TopK(self.topk_candidates, self.topk_coarse_stride, self.topk_check_patches, self.topk_tail)


@dataclass(frozen=True, kw_only=True)
class EpitomeSettings:
    """Size and training of the all-tile epitome (spec §3; the paper: 499², 11–31 px, 50,000 iterations)."""

    side: int
    layers: int = 1
    layer_training: str = "joint"
    iterations: int
    batch_size: int = 64
    patch_sizes: tuple[int, ...]
    learning_rate: float = 0.003
    diversify: bool = False
    checkpoint_every: int = 100

    def __post_init__(self) -> None:
        if self.layer_training not in LAYER_TRAINING:
            raise ValueError(f"layer_training must be one of {LAYER_TRAINING}, got {self.layer_training!r}")

    def train_config(self, seed: int) -> TrainConfig:
        return TrainConfig(
            patch_sizes=tuple(self.patch_sizes), batch_size=self.batch_size, learning_rate=self.learning_rate,
            diversify=self.diversify, seed=seed,
        )


@dataclass(frozen=True, kw_only=True)
class EmbedSettings(PosteriorSettings):
    """Coarse-label embedding (spec §5): patch side, number of sampled patches, temperature (None = (w/11)²)."""

    patch_size: int
    samples: int
    batch_size: int = 64
    temperature: float | None = None


@dataclass(frozen=True, kw_only=True)
class EMSettings:
    """LSR EM (spec §6): the authors' form by default; the paper's p(c) and the present-class flag."""

    iterations: int = 20
    weight_by_class_frequency: bool = False
    restrict_to_present_classes: bool = False


@dataclass(frozen=True, kw_only=True)
class ReconstructSettings(PosteriorSettings):
    """Tile reconstruction (spec §5): window stride, positions sampled per window, temperature."""

    stride: int = 4
    samples: int = 1
    temperature: float | None = None


@dataclass(frozen=True, kw_only=True)
class SelfEpitomicSettings(PosteriorSettings):
    """Self-epitomic LSR (spec §7): the notebook's 7×7 patches, λ = 100 and T = w²; 5,000 patches per
    tile as the authors' own run on the Chesapeake patches (the notebook: 20,000)."""

    patch_size: int = 7
    samples: int = 5000
    batch_size: int = 64
    ivar: float = 100.0
    temperature: float | None = None
    # at T = w² the posterior is flat (the candidates hold a few % of the exact mass, the tail the
    # rest), so refining 4 blocks is as accurate as 16 (bench/epitome.py §4b) and cheaper
    topk_candidates: int = 64


@dataclass(frozen=True, kw_only=True)
class ColourSettings:
    """Colour-mixture LSR (spec §8): 48 diagonal components; ``pooled`` fits one mixture over all tiles."""

    components: int = 48
    fit_pixels: int = 20000
    soft: bool = False
    pooled: bool


@dataclass(frozen=True, kw_only=True)
class DistillSettings:
    """The 5-layer FCN distilled from the DFC2020 ensemble (spec §9): width and its training."""

    width: int = 64
    epochs: int = 30
    batch_size: int = 4
    learning_rate: float = 0.001
