"""Gaussian epitome: parameters and the log joint log p(x, s) of a batch of patches (spec §2, §4).

An epitome has L layers, C channels and an H×W torus of positions.  Position s = (l, u, v) puts the
patch *centre* on epitome pixel (u, v); patch pixel (i, j) meets epitome pixel
((u + i − p) mod H, (v + j − p) mod W) with p = w // 2.

The log joint (spec §2, constant −(C w²/2) log 2π dropped) is evaluated by expanding the square:

    log p(x, s) = R(x, s) − ½ Z(x, s) + ½ (V(s) − A(s)) + log_softmax(π_l)(u, v)

with R the cross-correlation of μλ with x, Z that of λ with x², A and V the w×w box sums of μ²λ and
log λ.  R − ½Z is a single correlation of the stacked field [μλ, λ] with the stacked kernel
[x, −x²/2].  This module holds the model, the reference path (that correlation computed directly,
``conv2d`` on the circularly padded field) and the dispatcher :func:`log_joint`, which runs it or
one of the fast exact paths (:mod:`eolabels.epitome.fast_paths`), the cheapest under the cost
model (:mod:`eolabels.epitome.cost_model`).  Everything that depends only on the parameters lives
in :class:`~eolabels.epitome.fields.EpitomeFields`, built once per parameter update and reused for
every batch.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from eolabels.epitome.cost_model import GRAD_FFT_MAX_MATRIX_ELEMENTS, choose_method
from eolabels.epitome.fast_paths import log_joint_constant_ivar, log_joint_constant_ivar_fft, log_joint_fft
from eolabels.epitome.fields import EpitomeFields
from eolabels.epitome.terms import affine, gradient_tracked, patch_kernels, scaled

Method = Literal["auto", "direct", "fft", "constant_ivar", "constant_ivar_fft"]

# Default memory bound per chunk of patches, in elements of its largest intermediate (128 MiB of float32).
DEFAULT_MAX_CHUNK_ELEMENTS = 1 << 25


class GaussianEpitome(nn.Module):
    """The epitome's parameters: mean μ, inverse variance λ and per-layer prior logits π (spec §2).

    Shapes: ``mean`` and ``ivar`` are L×C×H×W, ``prior_logits`` is L×H×W.
    """

    def __init__(self, mean: Tensor, ivar: Tensor, prior_logits: Tensor) -> None:
        super().__init__()
        if mean.dim() != 4 or ivar.shape != mean.shape:
            raise ValueError(
                f"mean and ivar must both be L×C×H×W, got {tuple(mean.shape)}, {tuple(ivar.shape)}"
            )
        layers, _, height, width = mean.shape
        if prior_logits.shape != (layers, height, width):
            raise ValueError(
                f"prior_logits must be {(layers, height, width)}, got {tuple(prior_logits.shape)}"
            )
        self.mean = nn.Parameter(mean)
        self.ivar = nn.Parameter(ivar)
        self.prior_logits = nn.Parameter(prior_logits)
        self._fields_cache: dict[int, tuple[tuple, EpitomeFields]] = {}

    @classmethod
    def initialise(
        cls,
        layers: int,
        channels: int,
        height: int,
        width: int | None = None,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> "GaussianEpitome":
        """Paper initialisation (spec §2): μ ~ 0.5 + U(0, 0.1), λ = 10, π = 0."""
        width = height if width is None else width
        shape = (layers, channels, height, width)
        mean = 0.5 + torch.rand(shape, generator=generator, dtype=dtype) / 10
        ivar = torch.full(shape, 10.0, dtype=dtype)
        prior = torch.zeros((layers, height, width), dtype=dtype)
        return cls(mean, ivar, prior)

    @classmethod
    def from_image(cls, image: Tensor, ivar: float = 100.0) -> "GaussianEpitome":
        """Self-epitome of one C×H×W image (spec §7): μ = image, λ constant, π = 0."""
        mean = image.unsqueeze(0).clone()
        return cls(mean, torch.full_like(mean, ivar), torch.zeros_like(mean[:, 0]))

    @property
    def shape(self) -> tuple[int, int, int, int]:
        layers, channels, height, width = self.mean.shape
        return layers, channels, height, width

    def fields(self, patch_size: int) -> EpitomeFields:
        """Data-independent terms for patches of side ``patch_size`` (differentiable when a
        gradient is tracked).

        Without a gradient to track they are built once per parameter update (spec §2) and reused:
        the cache is keyed by the parameters' storage and in-place version counters, which every
        optimiser step, ``load_state_dict`` and ``copy_`` advance (writes through ``.data`` or a
        shared NumPy view do not: call :meth:`clear_fields_cache` after those).  Predicting many
        tiles from one trained epitome then builds the fields (transforms of the whole epitome) only
        for the first.  Inference-mode tensors carry no version counter, so nothing is cached there.
        """
        parameters = list(self.parameters())
        tracked = gradient_tracked(*parameters)
        inference = torch.is_inference_mode_enabled() or any(p.is_inference() for p in parameters)
        if tracked or inference:
            return EpitomeFields(self.mean, self.ivar, self.prior_logits, patch_size)
        key = tuple((p.data_ptr(), p._version, p.dtype, p.device) for p in parameters)
        cached = self._fields_cache.get(patch_size)
        if cached is None or cached[0] != key:
            # entries of earlier parameter versions are dropped with their scratch buffers
            self._fields_cache = {w: entry for w, entry in self._fields_cache.items() if entry[0] == key}
            cached = (key, EpitomeFields(self.mean, self.ivar, self.prior_logits, patch_size))
            self._fields_cache[patch_size] = cached
        return cached[1]

    def clear_fields_cache(self) -> None:
        """Forget the cached fields (and their scratch buffers)."""
        self._fields_cache = {}

    def _apply(self, fn, *args, **kwargs):  # .to() / .cuda() / .double(): cached fields are stale
        self.clear_fields_cache()
        return super()._apply(fn, *args, **kwargs)

    def forward(self, patches: Tensor, method: Method = "auto") -> Tensor:
        """``E[l, b, u, v] = log p(x_b, s = (l, u, v))`` for a B×C×w×w batch (spec §2)."""
        return log_joint(self.fields(patches.shape[-1]), patches, method=method)


def log_joint_direct(fields: EpitomeFields, patches: Tensor, scale: float = 1.0, shift: float = 0.0) -> Tensor:
    """log p(x_b, s) by direct valid cross-correlation on the padded torus (spec §2), L×B×H×W.

    Every path returns ``scale``·log p + ``shift`` (e.g. 1/T and −bound/T for tempered posteriors)
    with the scale on its kernels and the shift on its constant terms: no pass over the output."""
    fields.check_patches(patches)
    correlation = F.conv2d(fields.padded, scaled(patch_kernels(patches), scale))
    return correlation.add_(affine(fields.constant, scale, shift).unsqueeze(1))


def resolve_method(fields: EpitomeFields, method: Method = "auto") -> str:
    """The path ``method`` names; for ``"auto"`` the cheapest under
    :func:`~eolabels.epitome.cost_model.choose_method`, except that with a gradient to track the FFT
    path is only taken while its product matrices stay below ``GRAD_FFT_MAX_MATRIX_ELEMENTS`` (its
    backward forms their gradient)."""
    if method != "auto":
        return method
    chosen = choose_method(
        fields.layers, fields.channels, fields.height, fields.width, fields.patch_size,
        constant_ivar=fields.constant_ivar is not None, pocketfft=fields.inverse_on_pocketfft,
    )
    large = fields.product_matrix_elements > GRAD_FFT_MAX_MATRIX_ELEMENTS
    if chosen == "fft" and large and fields.tracks_gradient():
        return "direct"
    return chosen


def chunk_size(fields: EpitomeFields, max_elements: int = DEFAULT_MAX_CHUNK_ELEMENTS, method: str = "fft") -> int:
    """Patches per chunk so that the largest intermediate holds about ``max_elements`` floats: the
    L·H·W output on the convolution paths, the G×(2·L·H) product (≈ L·H·(n + 2) a patch; a few
    rows more with the blocked height engine) on the FFT paths, whose inverse DFT input and output
    are of that size too (peak ≈ 3× the bound)."""
    if method in ("direct", "constant_ivar"):
        per_patch = fields.layers * fields.height * fields.width
    else:
        per_patch = fields.layers * fields.height * (fields.fft_length + 2)
    return max(1, max_elements // per_patch)


LOG_JOINT_PATHS = {
    "direct": log_joint_direct,
    "fft": log_joint_fft,
    "constant_ivar": log_joint_constant_ivar,
    "constant_ivar_fft": log_joint_constant_ivar_fft,
}


def log_joint(
    fields: EpitomeFields,
    patches: Tensor,
    method: Method = "auto",
    max_chunk_elements: int = DEFAULT_MAX_CHUNK_ELEMENTS,
    scale: float = 1.0,
    shift: float = 0.0,
) -> Tensor:
    """``E[l, b, u, v] = log p(x_b, s)`` (spec §2), chunked over patches, fastest exact path by default.

    ``"direct"`` is the reference formulation of spec §2; every other path gives the same values
    (float32 rounding aside) and ``"auto"`` picks the cheapest under :func:`resolve_method`.  With
    ``scale``/``shift`` it returns scale·E + shift, folded into the kernels and constant terms (e.g.
    the tempered, shifted log joint (E − bound)/T whose exp is a posterior up to its normaliser).
    """
    method = resolve_method(fields, method)
    evaluate = LOG_JOINT_PATHS[method]
    step = chunk_size(fields, max_chunk_elements, method)
    if patches.shape[0] <= step:
        return evaluate(fields, patches, scale, shift)
    return torch.cat([evaluate(fields, chunk, scale, shift) for chunk in patches.split(step)], dim=1)


def posterior(log_joint_values: Tensor, temperature: float = 1.0) -> Tensor:
    """q(s | x_b) = softmax over (l, u, v) of log p(x_b, s)/T, normalised jointly over layers (spec §4, §5).

    Input and output are L×B×H×W; for every patch b the output sums to 1 over (l, u, v).
    """
    layers, batch, height, width = log_joint_values.shape
    flat = (log_joint_values / temperature).transpose(0, 1).reshape(batch, -1)
    q = torch.softmax(flat, dim=1)
    return q.view(batch, layers, height, width).transpose(0, 1)


def patch_log_likelihood(log_joint_values: Tensor, temperature: float = 1.0) -> Tensor:
    """log p(x_b) up to constants: logsumexp over (l, u, v) of the tempered log joint, length B."""
    return torch.logsumexp((log_joint_values / temperature).transpose(0, 1).flatten(1), dim=1)
