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

from eolabels.epitome.embed import accumulate_coarse_posteriors, embed_coarse_labels
from eolabels.epitome.model import GaussianEpitome, Method, log_joint, posterior
from eolabels.epitome.patches import PatchOrigins, crop, sample_origins
from eolabels.epitome.topk import (
    PATCHES_PER_PASS,
    DroppedMass,
    DroppedMassCheck,
    PosteriorSums,
    TopK,
    approximate_posterior,
)

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
    factorised: bool = True,
) -> Tensor:
    """p(ℓ | s) by EM over positions s (supplement eqs. 4–5; spec §6), float64 of shape (*positions, Lc).

    ``lrmap`` is K×(positions…): how much posterior mass patches of coarse class c put on s.
    Defaults reproduce the authors' ``superres``: p(c) uniform in eq. 5 and every table row taking
    part.  ``weight_by_class_frequency`` uses the paper's p(c) (the tile's coarse-class frequency);
    ``restrict_to_present_classes`` drops classes with an all-zero lrmap row.

    ``factorised`` (default) never forms the K×S×Lc responsibilities q: with
    q_{ℓ,c}(s) = (p(ℓ|s) p(s|c) + ε) / n_{c,ℓ}, n_{c,ℓ} = Σ_s p(ℓ|s) p(s|c) + ε·S, eq. 5 is
    Σ_c P[c,ℓ] q_{ℓ,c}(s) + ε = p(ℓ|s) · (Σ_c p(s|c) P[c,ℓ]/n_{c,ℓ}) + ε Σ_c P[c,ℓ]/n_{c,ℓ} + ε,
    two products with the K×S matrix p(s|c) an iteration instead of Lc passes over K×S (same values
    to float64 rounding; p(ℓ|s) is kept as Lc×S, so its normalisation adds Lc contiguous rows).
    ``factorised=False`` runs the literal loop of spec §6.
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
    if factorised:
        num_positions = s_given_c.shape[1]
        by_label = labels.T.contiguous()  # Lc×S: the sum over ℓ adds Lc contiguous rows
        for _ in range(iterations):
            normaliser = (by_label @ s_given_c.T).T + epsilon * num_positions  # K×Lc: Σ_s of eq. 4's numerator
            weights = weighted_table / normaliser  # K×Lc
            floor = (epsilon * weights.sum(0) + epsilon)[:, None]  # Lc×1
            updated = torch.mm(weights.T, s_given_c).mul_(by_label).add_(floor)
            by_label = updated.div_(updated.sum(0, keepdim=True))
        return by_label.T.contiguous().reshape(*spatial, by_label.shape[0])
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
    reference_accumulation: bool | None = None,
    topk: TopK | None = None,
    dropped: list[DroppedMass] | None = None,
) -> Tensor:
    """Self-epitomic LSR of one C×H×W tile (spec §7), returns p(ℓ | pixel) as H×W×Lc.

    The tile is its own epitome (μ = image, λ = ``ivar``, π = 0, borders wrap); ⌊samples/batch⌋
    batches of w×w patches are drawn inside the tile, each adds its posterior (T = w² by default,
    the notebook's ``/patch_size**2``) to lrmap[c] of its centre pixel's slot; EM gives p(ℓ|s).
    ``reference_accumulation`` (default: only with ``method="direct"``) forms the posteriors, lrmap
    and EM literally (:func:`posterior`, float64 :func:`embed_coarse_labels`, ``lsr_em(factorised=
    False)``) instead of the fused :func:`accumulate_coarse_posteriors` and the factorised EM, so
    ``method="direct"`` is the direct formulation end to end; all give the same values.

    ``topk``: approximate posteriors instead (:mod:`eolabels.epitome.topk`: the exact log joint at K
    candidates and, with its tail, the coarse subgrid for the other positions; ``method`` is then
    unused); what they drop against the exact posterior on a sample of patches is appended to
    ``dropped`` when given.
    """
    generator = torch.Generator().manual_seed(0) if generator is None else generator
    temperature = float(patch_size**2) if temperature is None else temperature
    tile = image.float()
    epitome = GaussianEpitome.from_image(tile, ivar)
    fields = epitome.fields(patch_size)
    lrmap = torch.zeros(table.shape[0], 1, *image.shape[-2:], dtype=torch.float64)
    if topk is not None:
        check = DroppedMassCheck(topk.check_patches if dropped is not None else 0)
        sums = PosteriorSums(lrmap)
        for count in _batches_per_pass(samples // batch_size, batch_size):
            origins = PatchOrigins.joined(
                [sample_origins([tuple(image.shape[-2:])], patch_size, batch_size, generator) for _ in range(count)]
            )
            rows, cols = origins.centres()
            origins, centre_slots = _grouped_by_slot(origins, slots[rows, cols])  # one tail sum per class
            patches = crop([tile], origins)
            # every patch is cut from the tile: its log joint peaks at the fields' bound (as the fused path)
            approximate = approximate_posterior(fields, patches, topk, temperature, fields.log_joint_bound)
            sums.add(centre_slots, approximate)
            check.add(fields, patches, approximate, temperature)
        sums.finish()
        _report(dropped, check)
        return lsr_em(lrmap, table, iterations, weight_by_class_frequency, restrict_to_present_classes, generator)[0]
    reference = method == "direct" if reference_accumulation is None else reference_accumulation
    accumulator = _PosteriorAccumulator(lrmap, reference)
    # fused: every patch is cut from the tile, so its log joint peaks at the fields' bound (at its own
    # position); the log joint comes out tempered and shifted, (E − bound)/T, ready for the exp
    if reference:
        scale, shift, accumulated_temperature, peak = 1.0, 0.0, temperature, None
    else:
        scale, shift, accumulated_temperature, peak = 1.0 / temperature, -fields.log_joint_bound / temperature, 1.0, 0.0
    for _ in range(samples // batch_size):
        origins = sample_origins([tuple(image.shape[-2:])], patch_size, batch_size, generator)
        rows, cols = origins.centres()
        origins, centre_slots = _grouped_by_slot(origins, slots[rows, cols])
        energies = log_joint(fields, crop([tile], origins), method=method, scale=scale, shift=shift)
        accumulator.add(energies, centre_slots, accumulated_temperature, peak)
    accumulator.flush()
    return lsr_em(
        lrmap, table, iterations, weight_by_class_frequency, restrict_to_present_classes, generator,
        factorised=not reference,
    )[0]


def _batches_per_pass(batches: int, batch_size: int) -> list[int]:
    """How many sampled batches each pass of the top-K path joins (about ``PATCHES_PER_PASS`` patches;
    the batches are drawn as on the exact path, so the same patches are sampled)."""
    group = max(1, PATCHES_PER_PASS // batch_size)
    return [min(group, batches - first) for first in range(0, batches, group)]


def _report(dropped: list[DroppedMass] | None, check: DroppedMassCheck) -> None:
    report = check.report()
    if dropped is not None and report is not None:
        dropped.append(report)


def _grouped_by_slot(origins: PatchOrigins, centre_slots: Tensor) -> tuple[PatchOrigins, Tensor]:
    """The batch reordered so that equal coarse slots are adjacent: lrmap sums over the batch, so
    only float rounding changes, and the fused accumulation adds one run per class."""
    order = torch.argsort(centre_slots, stable=True)
    return origins[order], centre_slots[order]


class _PosteriorAccumulator:
    """Adds batches of posteriors to lrmap[c] of their centre slots (lrmap: K×L×H×W float64, CPU).

    Reference: literally (spec §5: :func:`posterior`, float64 :func:`embed_coarse_labels`).  Fused:
    :func:`accumulate_coarse_posteriors` into a buffer of the log joint's dtype and device, added
    to the float64 lrmap every ``FLUSH_EVERY`` batches (a float32 sum of 16 batches of posteriors
    rounds at ~1e-7 relative, far below the log joint's own float32 rounding).
    """

    FLUSH_EVERY = 16

    def __init__(self, lrmap: Tensor, reference: bool) -> None:
        self.lrmap, self.reference = lrmap, reference
        self.buffer: Tensor | None = None
        self.pending = 0

    def add(self, energies: Tensor, centre_slots: Tensor, temperature: float, peak: float | None = None) -> None:
        if self.reference:
            q = posterior(energies, temperature)
            self.lrmap += embed_coarse_labels(q.double(), centre_slots.to(q.device), self.lrmap.shape[0]).cpu()
            return
        if self.buffer is None:
            shape = self.lrmap.shape
            if energies.stride(1) == 1 and energies.shape[1] > 1:  # positions-major log joint:
                # class sums are then written positions-major too, (L·H·W)×K viewed as K×L×H×W
                flat = torch.zeros(self.lrmap[0].numel(), shape[0], dtype=energies.dtype, device=energies.device)
                self.buffer = flat.T.view(shape)
            else:
                self.buffer = torch.zeros(shape, dtype=energies.dtype, device=energies.device)
        accumulate_coarse_posteriors(energies, centre_slots, self.buffer, temperature, overwrite_input=True, peak=peak)
        self.pending += 1
        if self.pending == self.FLUSH_EVERY:
            self.flush()

    def flush(self) -> None:
        if self.buffer is not None and self.pending:
            self.lrmap += self.buffer.cpu()
            self.buffer.zero_()
        self.pending = 0


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
    reference_accumulation: bool | None = None,
    topk: TopK | None = None,
    dropped: list[DroppedMass] | None = None,
) -> Tensor:
    """lrmap (K×L×H×W) of a trained epitome from patches sampled over several tiles (spec §5).

    ``reference_accumulation``, ``topk`` and ``dropped`` as in :func:`self_epitomic_lsr`."""
    generator = torch.Generator().manual_seed(0) if generator is None else generator
    temperature = (patch_size / 11) ** 2 if temperature is None else temperature
    fields = epitome.fields(patch_size)
    reference = method == "direct" if reference_accumulation is None else reference_accumulation
    shapes = [tuple(image.shape[-2:]) for image in images]
    lrmap = torch.zeros(num_slots, *epitome.shape[:1], *epitome.shape[2:], dtype=torch.float64)
    accumulator = _PosteriorAccumulator(lrmap, reference)
    sums = PosteriorSums(lrmap)
    check = DroppedMassCheck(topk.check_patches if topk is not None and dropped is not None else 0)
    passes = [1] * (samples // batch_size) if topk is None else _batches_per_pass(samples // batch_size, batch_size)
    for count in passes:
        origins = PatchOrigins.joined([sample_origins(shapes, patch_size, batch_size, generator) for _ in range(count)])
        rows, cols = origins.centres()
        centre_slots = crop(slot_maps, PatchOrigins(origins.image, rows, cols, 1)).flatten()
        origins, centre_slots = _grouped_by_slot(origins, centre_slots)
        patches = crop(images, origins).to(epitome.mean)
        if topk is None:
            accumulator.add(log_joint(fields, patches, method=method), centre_slots, temperature)
            continue
        approximate = approximate_posterior(fields, patches, topk, temperature)
        sums.add(centre_slots, approximate)
        check.add(fields, patches, approximate, temperature)
    accumulator.flush()
    sums.finish()
    _report(dropped, check)
    return lrmap
