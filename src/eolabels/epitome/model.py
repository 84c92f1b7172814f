"""Gaussian epitome: parameters and the log joint log p(x, s) of a batch of patches (spec §2, §4).

An epitome has L layers, C channels and an H×W torus of positions.  Position s = (l, u, v) puts the
patch *centre* on epitome pixel (u, v); patch pixel (i, j) meets epitome pixel
((u + i − p) mod H, (v + j − p) mod W) with p = w // 2.

The log joint (spec §2, constant −(C w²/2) log 2π dropped) is evaluated by expanding the square:

    log p(x, s) = R(x, s) − ½ Z(x, s) + ½ (V(s) − A(s)) + log_softmax(π_l)(u, v)

with R the cross-correlation of μλ with x, Z that of λ with x², A and V the w×w box sums of μ²λ and
log λ.  R − ½Z is a single correlation of the stacked field [μλ, λ] with the stacked kernel
[x, −x²/2]; it is computed either directly (``conv2d`` on the circularly padded field) or with a
DFT along the width and a batched matrix product along the height (the FFT path).  Everything that
depends only on the parameters lives in :class:`EpitomeFields`, built once per parameter update and
reused for every batch.
"""

from __future__ import annotations

import math
from functools import cached_property
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Method = Literal["auto", "direct", "fft"]

# Default memory bound per chunk of patches, in float32 elements of the largest intermediate.
DEFAULT_MAX_CHUNK_ELEMENTS = 1 << 25

# Cost of one DFT flop relative to one convolution / matrix-product flop: on the 2-core CPU of
# bench/epitome.py, oneDNN convolution and MKL GEMM ran at 30–100 GFLOP/s, batched row DFTs at 2–8.
FFT_FLOP_COST = 25.0


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

    def fields(self, patch_size: int) -> "EpitomeFields":
        """Data-independent terms for patches of side ``patch_size`` (differentiable)."""
        return EpitomeFields(self.mean, self.ivar, self.prior_logits, patch_size)

    def forward(self, patches: Tensor, method: Method = "auto") -> Tensor:
        """``E[l, b, u, v] = log p(x_b, s = (l, u, v))`` for a B×C×w×w batch (spec §2)."""
        return log_joint(self.fields(patches.shape[-1]), patches, method=method)


class EpitomeFields:
    """Parameter-only terms of eq. (1) for one odd patch side w (spec §2, "computed once per update").

    ``weighted`` is the stacked field [μλ, λ] (L×2C×H×W); ``constant`` is
    ½(V − A) + log_softmax(π) (L×H×W).  The circularly padded field (direct path) and the field's
    unfolded row spectrum (FFT path) are derived on first use and cached.
    """

    def __init__(self, mean: Tensor, ivar: Tensor, prior_logits: Tensor, patch_size: int) -> None:
        layers, channels, height, width = mean.shape
        if patch_size % 2 != 1:
            raise ValueError(f"patch side must be odd (spec §2), got {patch_size}")
        if patch_size > min(height, width):
            raise ValueError(f"patch side {patch_size} exceeds the epitome side {min(height, width)}")
        self.patch_size = patch_size
        self.layers, self.channels, self.height, self.width = layers, channels, height, width
        self.weighted = torch.cat([mean * ivar, ivar], dim=1)
        a_term = box_sum_torus((mean * mean * ivar).sum(1, keepdim=True), patch_size)
        v_term = box_sum_torus(torch.log(ivar).sum(1, keepdim=True), patch_size)
        log_prior = torch.log_softmax(prior_logits.flatten(1), dim=1).view_as(prior_logits)
        self.constant = 0.5 * (v_term - a_term).squeeze(1) + log_prior

    @property
    def half(self) -> int:
        return self.patch_size // 2

    @cached_property
    def padded(self) -> Tensor:
        """[μλ, λ] circularly padded by p on every side: a *valid* w×w correlation gives H×W outputs."""
        p = self.half
        return F.pad(self.weighted, (p, p, p, p), mode="circular") if p else self.weighted

    @cached_property
    def fft_length(self) -> int:
        """Row DFT length: a fast size ≥ W + 2p, so a *linear* correlation of the padded rows is exact."""
        return next_fast_length(self.width + 2 * self.half)

    @cached_property
    def row_spectrum_columns(self) -> Tensor:
        """Row spectra of the width-padded field, unfolded along the height (G×(L·H)×(2C·w), complex).

        Entry [g, l·H + u, k·w + i] is the g-th row-DFT coefficient of field channel k, layer l, at
        epitome row (u + i − p) mod H: one batched matrix product per frequency then gives the
        correlation along the height, the DFT having done the width (see :func:`log_joint_fft`).
        """
        p, w = self.half, self.patch_size
        rows = F.pad(self.weighted, (p, p, 0, 0), mode="circular") if p else self.weighted
        spectrum = torch.fft.rfft(rows, n=self.fft_length, dim=-1)
        device = spectrum.device
        offsets = torch.arange(self.height, device=device)[:, None] + torch.arange(w, device=device) - p
        unfolded = spectrum[:, :, offsets % self.height, :]  # L×2C×H×w×G
        return unfolded.permute(4, 0, 2, 1, 3).reshape(
            spectrum.shape[-1], self.layers * self.height, 2 * self.channels * w
        )


def next_fast_length(n: int) -> int:
    """Smallest integer ≥ n whose prime factors are all in {2, 3, 5, 7} (fast FFT sizes)."""
    while True:
        rest = n
        for factor in (2, 3, 5, 7):
            while rest % factor == 0:
                rest //= factor
        if rest == 1:
            return n
        n += 1


def box_sum_torus(field: Tensor, size: int) -> Tensor:
    """Sum of ``field`` (N×K×H×W) over the size×size window centred on each pixel, wrapping."""
    p = size // 2
    padded = F.pad(field, (p, p, p, p), mode="circular") if p else field
    return F.avg_pool2d(padded, size, stride=1) * (size * size)


def patch_kernels(patches: Tensor) -> Tensor:
    """Stacked correlation kernels [x, −x²/2] (B×2C×w×w) so one correlation gives R − Z/2."""
    return torch.cat([patches, -0.5 * patches * patches], dim=1)


def log_joint_direct(fields: EpitomeFields, patches: Tensor) -> Tensor:
    """log p(x_b, s) by direct valid cross-correlation on the padded torus (spec §2), L×B×H×W."""
    _check_patches(fields, patches)
    correlation = F.conv2d(fields.padded, patch_kernels(patches))
    return correlation + fields.constant.unsqueeze(1)


def log_joint_fft(fields: EpitomeFields, patches: Tensor) -> Tensor:
    """log p(x_b, s) with a DFT along the width and a matrix product along the height, L×B×H×W.

    The width-padded field rows and the patch rows are transformed with a fast length ≥ W + 2p (a
    linear correlation of the circularly padded rows equals the torus correlation); per frequency,
    the correlation along the height is one (L·H)×(2C·w) by (2C·w)×B complex product; an inverse
    real DFT per output row gives R − Z/2.
    """
    _check_patches(fields, patches)
    layers, height, width = fields.layers, fields.height, fields.width
    batch = patches.shape[0]
    kernel_rows = torch.fft.rfft(patch_kernels(patches), n=fields.fft_length, dim=-1).conj()
    kernel_columns = kernel_rows.reshape(batch, -1, kernel_rows.shape[-1]).permute(2, 1, 0).contiguous()
    product = torch.bmm(fields.row_spectrum_columns, kernel_columns)  # G×(L·H)×B
    rows = torch.fft.irfft(product.permute(2, 1, 0), n=fields.fft_length, dim=-1)  # B×(L·H)×n
    correlation = rows.view(batch, layers, height, fields.fft_length)[..., :width].transpose(0, 1)
    return correlation + fields.constant.unsqueeze(1)


def _check_patches(fields: EpitomeFields, patches: Tensor) -> None:
    if patches.dim() != 4 or patches.shape[1] != fields.channels or patches.shape[-2:] != (
        fields.patch_size,
        fields.patch_size,
    ):
        raise ValueError(
            f"patches must be B×{fields.channels}×{fields.patch_size}×{fields.patch_size}, "
            f"got {tuple(patches.shape)}"
        )


def direct_cost(layers: int, channels: int, height: int, width: int, patch_size: int) -> float:
    """Flops per patch of the direct correlation: 2·L·H·W·2C·w²."""
    return 2.0 * layers * height * width * 2 * channels * patch_size**2


def fft_cost(layers: int, channels: int, height: int, width: int, patch_size: int) -> float:
    """Weighted flops per patch of the FFT path: the per-frequency matrix product plus the row DFTs.

    DFT flops (2.5·n·log2 n per row; 2C·w forward and L·H inverse rows) are weighted by
    ``FFT_FLOP_COST`` because they run far below the matrix-product rate.
    """
    n = next_fast_length(width + 2 * (patch_size // 2))
    matmul = 8.0 * (n // 2 + 1) * layers * height * 2 * channels * patch_size
    row_dfts = 2.5 * n * math.log2(n) * (layers * height + 2 * channels * patch_size)
    return matmul + FFT_FLOP_COST * row_dfts


def choose_method(layers: int, channels: int, height: int, width: int, patch_size: int) -> str:
    """The cheaper of ``"direct"`` and ``"fft"`` under the flop model above."""
    direct = direct_cost(layers, channels, height, width, patch_size)
    fft = fft_cost(layers, channels, height, width, patch_size)
    return "fft" if fft < direct else "direct"


def chunk_size(fields: EpitomeFields, max_elements: int) -> int:
    """Patches per chunk so the largest intermediate (~3·L·H·W floats a patch) fits ``max_elements``."""
    per_patch = 3 * fields.layers * fields.height * max(fields.width, fields.fft_length)
    return max(1, max_elements // per_patch)


def log_joint(
    fields: EpitomeFields,
    patches: Tensor,
    method: Method = "auto",
    max_chunk_elements: int = DEFAULT_MAX_CHUNK_ELEMENTS,
) -> Tensor:
    """``E[l, b, u, v] = log p(x_b, s)`` (spec §2), chunked over patches, faster path by default."""
    if method == "auto":
        method = choose_method(fields.layers, fields.channels, fields.height, fields.width, fields.patch_size)
    evaluate = {"direct": log_joint_direct, "fft": log_joint_fft}[method]
    step = chunk_size(fields, max_chunk_elements)
    if patches.shape[0] <= step:
        return evaluate(fields, patches)
    return torch.cat([evaluate(fields, chunk) for chunk in patches.split(step)], dim=1)


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
