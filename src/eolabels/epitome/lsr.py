"""Label super-resolution: the EM of supplement eqs. 4–5 and the models that feed it (spec §6, §7, §8).

``table`` is always the K×Lc matrix p(ℓ|c) of coarse slot c (rows) to fine class ℓ (columns), passed in
as data (e.g. the NLCD→4 table of spec §10 from ``config/tables/``); coarse maps hold slot indices.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from sklearn.mixture import GaussianMixture
from torch import Tensor

from eolabels.epitome.embed import embed_coarse_labels
from eolabels.epitome.model import GaussianEpitome, Method, log_joint, posterior
from eolabels.epitome.patches import PatchOrigins, crop, sample_origins

EM_EPSILON = 1e-11  # spec §6 (the notebook's ε)


def coarse_slots(codes: Tensor, slot_codes: Sequence[int]) -> Tensor:
    """Map coarse class codes (e.g. NLCD 11, 21, …) to their row index in the p(ℓ|c) table."""
    lookup = {int(code): slot for slot, code in enumerate(slot_codes)}
    present = torch.unique(codes).tolist()
    unknown = [int(c) for c in present if int(c) not in lookup]
    if unknown:
        raise ValueError(f"coarse codes {unknown} are not rows of the p(l|c) table {list(slot_codes)}")
    slots = torch.empty_like(codes, dtype=torch.long)
    for code in present:
        slots[codes == code] = lookup[int(code)]
    return slots


def lsr_em(
    lrmap: Tensor,
    table: Tensor,
    iterations: int = 20,
    weight_by_class_frequency: bool = False,
    restrict_to_present_classes: bool = False,
    generator: torch.Generator | None = None,
    epsilon: float = EM_EPSILON,
) -> Tensor:
    """p(ℓ | s) by EM over positions s (supplement eqs. 4–5; spec §6), float64 of shape (*positions, Lc).

    ``lrmap`` is K×(positions…): how much posterior mass patches of coarse class c put on s.
    Defaults reproduce the authors' ``superres``: p(c) uniform in eq. 5 and every table row taking
    part.  ``weight_by_class_frequency`` uses the paper's p(c) (the tile's coarse-class frequency);
    ``restrict_to_present_classes`` drops classes with an all-zero lrmap row.
    """
    spatial = lrmap.shape[1:]
    counts = lrmap.reshape(lrmap.shape[0], -1).double()
    p_label = table.double()
    if counts.shape[0] != p_label.shape[0]:
        raise ValueError(
            f"lrmap has {counts.shape[0]} coarse classes but the table has {p_label.shape[0]} rows"
        )
    if weight_by_class_frequency:
        class_weight = counts.sum(1) / counts.sum()
    else:
        class_weight = torch.ones_like(counts[:, 0])
    if restrict_to_present_classes:
        present = counts.sum(1) > 0
        counts, p_label, class_weight = counts[present], p_label[present], class_weight[present]
    g = counts + epsilon
    g = g / g.sum(0, keepdim=True)  # p(c | s)
    s_given_c = g / g.sum(1, keepdim=True)  # p(s | c) ∝ p(c | s), uniform p(s)
    weighted_table = p_label * class_weight[:, None]
    # p(ℓ|s) starts near uniform, U(0, 1) + 10 normalised: the notebook's superres (spec §6)
    labels = torch.rand(s_given_c.shape[1], p_label.shape[1], generator=generator, dtype=torch.float64)
    labels = labels + 10
    labels = labels / labels.sum(1, keepdim=True)
    for _ in range(iterations):
        updated = torch.empty_like(labels)
        for label in range(labels.shape[1]):
            q = labels[:, label] * s_given_c + epsilon  # eq. 4: q_{ℓ,c}(s) ∝ p(ℓ|s) p(s|c)
            q = q / q.sum(1, keepdim=True)
            updated[:, label] = weighted_table[:, label] @ q + epsilon  # eq. 5
        labels = updated / updated.sum(1, keepdim=True)
    return labels.reshape(*spatial, labels.shape[1])


def naive_labels(slots: Tensor, table: Tensor) -> Tensor:
    """Baseline: argmax_ℓ p(ℓ | c) of each pixel's coarse class."""
    return table.argmax(1)[slots]


@torch.no_grad()
def self_epitomic_lsr(
    image: Tensor,
    slots: Tensor,
    table: Tensor,
    patch_size: int = 7,
    samples: int = 20000,
    batch_size: int = 64,
    ivar: float = 100.0,
    temperature: float | None = None,
    iterations: int = 20,
    generator: torch.Generator | None = None,
    method: Method = "auto",
    weight_by_class_frequency: bool = False,
    restrict_to_present_classes: bool = False,
) -> Tensor:
    """Self-epitomic LSR of one C×H×W tile (spec §7), returns p(ℓ | pixel) as H×W×Lc.

    The tile is its own epitome (μ = image, λ = ``ivar``, π = 0, borders wrap); ⌊samples/batch⌋
    batches of w×w patches are drawn inside the tile, each adds its posterior (T = w² by default,
    the notebook's ``/patch_size**2``) to lrmap[c] of its centre pixel's slot; EM gives p(ℓ|s).
    """
    generator = torch.Generator().manual_seed(0) if generator is None else generator
    temperature = float(patch_size**2) if temperature is None else temperature
    tile = image.float()
    epitome = GaussianEpitome.from_image(tile, ivar)
    fields = epitome.fields(patch_size)
    lrmap = torch.zeros(table.shape[0], 1, *image.shape[-2:], dtype=torch.float64)
    for _ in range(samples // batch_size):
        origins = sample_origins([tuple(image.shape[-2:])], patch_size, batch_size, generator)
        rows, cols = origins.centres()
        q = posterior(log_joint(fields, crop([tile], origins), method=method), temperature)
        lrmap += embed_coarse_labels(q.double(), slots[rows, cols].to(q.device), table.shape[0]).cpu()
    return lsr_em(
        lrmap, table, iterations, weight_by_class_frequency, restrict_to_present_classes, generator
    )[0]


def colour_mixture_lsr(
    image: Tensor,
    slots: Tensor,
    table: Tensor,
    components: int = 48,
    seed: int = 0,
    soft: bool = False,
    fit_pixels: int = 20000,
    iterations: int = 20,
) -> Tensor:
    """Colour-only LSR (spec §8): a diagonal GMM's components play the positions; returns H×W×Lc.

    The mixture is fitted (k-means++ initialisation, fixed seed) on ``fit_pixels`` random pixels; the
    components × coarse-slot co-occurrence (hard argmax, or responsibilities if ``soft``) is the
    lrmap for :func:`lsr_em`.  Each pixel gets its component's p(ℓ|s) (soft: the responsibility mix).
    """
    pixels = image.reshape(image.shape[0], -1).T.double().numpy()
    rng = np.random.default_rng(seed)
    fit = pixels[rng.choice(len(pixels), size=min(fit_pixels, len(pixels)), replace=False)]
    mixture = GaussianMixture(
        components, covariance_type="diag", init_params="k-means++", random_state=seed
    ).fit(fit)
    if soft:
        membership = torch.from_numpy(mixture.predict_proba(pixels))
    else:
        hard = torch.from_numpy(mixture.predict(pixels))
        membership = torch.nn.functional.one_hot(hard, components).double()
    lrmap = torch.zeros(table.shape[0], components, dtype=torch.float64)
    lrmap.index_add_(0, slots.flatten(), membership)
    generator = torch.Generator().manual_seed(seed)
    per_component = lsr_em(lrmap, table, iterations, generator=generator)
    return (membership @ per_component).reshape(*image.shape[-2:], -1)


@torch.no_grad()
def embed_coarse_dataset(
    epitome: GaussianEpitome,
    images: Sequence[Tensor],
    slot_maps: Sequence[Tensor],
    num_slots: int,
    patch_size: int,
    samples: int,
    batch_size: int = 64,
    temperature: float | None = None,
    generator: torch.Generator | None = None,
    method: Method = "auto",
) -> Tensor:
    """lrmap (K×L×H×W) of a trained epitome from patches sampled over several tiles (spec §5)."""
    generator = torch.Generator().manual_seed(0) if generator is None else generator
    temperature = (patch_size / 11) ** 2 if temperature is None else temperature
    fields = epitome.fields(patch_size)
    shapes = [tuple(image.shape[-2:]) for image in images]
    lrmap = torch.zeros(num_slots, *epitome.shape[:1], *epitome.shape[2:], dtype=torch.float64)
    for _ in range(samples // batch_size):
        origins = sample_origins(shapes, patch_size, batch_size, generator)
        rows, cols = origins.centres()
        centre_slots = crop(slot_maps, PatchOrigins(origins.image, rows, cols, 1)).flatten()
        patches = crop(images, origins).to(epitome.mean)
        q = posterior(log_joint(fields, patches, method=method), temperature)
        lrmap += embed_coarse_labels(q.double(), centre_slots.to(q.device), num_slots).cpu()
    return lrmap
