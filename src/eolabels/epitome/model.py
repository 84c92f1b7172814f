"""Gaussian epitome: parameters and the log joint log p(x, s) of a batch of patches (spec §2, §4).

An epitome has L layers, C channels and an H×W torus of positions.  Position s = (l, u, v) puts the
patch *centre* on epitome pixel (u, v); patch pixel (i, j) meets epitome pixel
((u + i − p) mod H, (v + j − p) mod W) with p = w // 2.

The log joint (spec §2, constant −(C w²/2) log 2π dropped) is evaluated by expanding the square:

    log p(x, s) = R(x, s) − ½ Z(x, s) + ½ (V(s) − A(s)) + log_softmax(π_l)(u, v)

with R the cross-correlation of μλ with x, Z that of λ with x², A and V the w×w box sums of μ²λ and
log λ.  R − ½Z is a single correlation of the stacked field [μλ, λ] with the stacked kernel
[x, −x²/2]; it is computed either directly (``conv2d`` on the circularly padded field) or with a
DFT along the width and, along the height, a batched matrix product or for large patches blocked
overlap-save (the FFT path, see :mod:`eolabels.epitome.blocked_fft`).  Everything that
depends only on the parameters lives in :class:`EpitomeFields`, built once per parameter update and
reused for every batch.

When λ is constant over positions (per layer and channel, e.g. the self-epitome of spec §7, λ = 100)
and no gradient is needed, Z(x, s) = Σ_k λ_k ‖x_k‖² no longer depends on s, so the correlation only
needs the C channels of μλ: the ``constant_ivar`` paths compute exactly the same log joint with half
the correlation work (an algebraic identity, not an approximation).  The fast paths also shift x
and μ by the per-channel mean of μ (Σ λ (x − μ)² is shift-invariant), which shrinks the terms that
cancel in R − Z/2 − A/2 and so their float32 rounding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from eolabels.epitome.blocked_fft import BlockPlan, block_plan, correlate_blocked, window_spectra
from eolabels.epitome.dft import inverse_dft_on_pocketfft, inverse_row_dft, row_dft_matrix

Method = Literal["auto", "direct", "fft", "constant_ivar", "constant_ivar_fft"]

# Default memory bound per chunk of patches, in elements of its largest intermediate (128 MiB of float32).
DEFAULT_MAX_CHUNK_ELEMENTS = 1 << 25


@dataclass(frozen=True)
class CostWeights:
    """Weights of the flop model behind ``method="auto"``, in units of one convolution flop."""

    matmul: float  # a flop of the FFT path's batched product
    fft_flop: float  # a flop (2.5·n·log2 n a row) of the inverse row DFT
    fft_output: float  # an output of the FFT path (product and inverse written, read back)
    direct_output: float  # an output of the direct path (written, then the constant added)
    constant_ivar_output: float  # an output of the constant-λ convolution (bias and one in-place add)


# With a gradient the inverse row DFT is torch's (MKL on CPU); on the 2-core AVX-512 CPU of
# bench/epitome.py oneDNN convolution ran at ~120 GFLOP/s, the complex batched product (MKL) at
# ~70–80 and batched inverse real row DFTs (MKL) at ~5.  On a GPU (cuFFT) these CPU weights are
# used too: no GPU timings have been fitted.
MKL_COSTS = CostWeights(matmul=1.5, fft_flop=20.0, fft_output=0.0, direct_output=0.0, constant_ivar_output=0.0)
# Without a gradient on CPU it is pocketfft's (embedding, LSR, inference).  Fitted to no-gradient
# timings on the same machine (bench/epitome.py shapes and 299² at w = 3–21, 128², self-epitomes of
# 128–512² at w = 5–9): the direct path ran at ~217 GFLOP/s plus ~4.2 ns an output (its output is
# memory-bound: 299², w = 3, B = 256 took 111 ms, of which 15 ms are flops), the constant-λ
# convolution at ~230 GFLOP/s plus ~1.5 ns an output, the FFT path's product at ~245 GFLOP/s, its
# inverse at ~22 GFLOP/s plus ~1.8 ns an output.  The flop model alone had direct chosen at 299²
# for w = 3–7, where the FFT path ran 1.5–2.4× faster.
POCKETFFT_COSTS = CostWeights(
    matmul=0.9, fft_flop=10.0, fft_output=400.0, direct_output=900.0, constant_ivar_output=340.0
)
# The output weights hold once a batch's output leaves the cache; they ramp in linearly up to this
# many positions L·H·W (below it, e.g. at 64² or 128² with B = 64–256, direct ran at its flop rate
# and beat the FFT path at w = 3).
MEMORY_BOUND_POSITIONS = 1 << 17


def cost_weights(pocketfft: bool) -> CostWeights:
    """The weights for an inverse row DFT on pocketfft, or on torch's FFT."""
    return POCKETFFT_COSTS if pocketfft else MKL_COSTS


def _memory_bound(positions: int) -> float:
    """The share of the output weights that applies at L·H·W = ``positions``."""
    return min(1.0, positions / MEMORY_BOUND_POSITIONS)


# With a gradient to track, the FFT path's backward forms the gradient of its product matrices; above
# this many elements (32 MB of float32: glibc maps larger buffers afresh on every step) the FFT path
# lost to direct on the bench machine (forward + backward, 299², B = 64: 483 vs 207 ms at w = 11,
# 792 vs 650 ms at w = 21), below it, it won (47 vs 96 ms at 128², w = 15).
GRAD_FFT_MAX_MATRIX_ELEMENTS = 1 << 23

# Patch side from which the FFT paths correlate along the height by blocked overlap-save (when no
# gradient is needed).  Bench machine, N = 299, B = 64: 27 against 33 ms at w = 15, 38 against 57
# at w = 31; at w = 11 (and at B = 256 up to w = 13) the w-tap product per frequency was as fast.
BLOCKED_FFT_MIN_PATCH = 15


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

    def fields(self, patch_size: int) -> "EpitomeFields":
        """Data-independent terms for patches of side ``patch_size`` (differentiable when a
        gradient is tracked).

        Without a gradient to track they are built once per parameter update (spec §2) and reused:
        the cache is keyed by the parameters' storage and in-place version counters, which every
        optimiser step, ``load_state_dict`` and ``copy_`` advance (writes through ``.data`` or a
        shared NumPy view do not: call :meth:`clear_fields_cache` after those).  Predicting many
        tiles from one trained epitome then builds the fields (0.1–0.3 s at 299², w = 31) only for
        the first.  Inference-mode tensors carry no version counter, so nothing is cached there.
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


class EpitomeFields:
    """Parameter-only terms of eq. (1) for one odd patch side w (spec §2, "computed once per update").

    ``weighted`` is the stacked field [μλ, λ] (L×2C×H×W); ``constant`` is
    ½(V − A) + log_softmax(π) (L×H×W).  ``constant_ivar`` is the L×C matrix of λ when λ is constant
    over positions and no gradient is required (else None); the ``constant_ivar`` paths then only
    correlate the C channels of μλ (``mean_weighted``).  The circularly padded fields (direct paths)
    and the fields' unfolded row spectra (FFT paths) are derived on first use and cached.
    """

    def __init__(self, mean: Tensor, ivar: Tensor, prior_logits: Tensor, patch_size: int) -> None:
        layers, channels, height, width = mean.shape
        if patch_size % 2 != 1:
            raise ValueError(f"patch side must be odd (spec §2), got {patch_size}")
        if patch_size > min(height, width):
            raise ValueError(f"patch side {patch_size} exceeds the epitome side {min(height, width)}")
        self.patch_size = patch_size
        self.layers, self.channels, self.height, self.width = layers, channels, height, width
        v_term = box_sum_torus(torch.log(ivar).sum(1, keepdim=True), patch_size)
        log_prior = torch.log_softmax(prior_logits.flatten(1), dim=1).view_as(prior_logits)
        self.constant_ivar = constant_ivar(ivar)
        self._mean, self._ivar, self._log_prior, self._v_term = mean, ivar, log_prior, v_term
        self._workspaces: dict[tuple[str, torch.dtype, torch.device], Tensor] = {}

    def workspace(self, shape: tuple[int, ...], like: Tensor, name: str) -> Tensor:
        """A scratch tensor of ``shape`` reused across calls (grown as needed; one per ``name``, dtype
        and device), for intermediates that never leave a log-joint evaluation: a fresh 100 MB buffer
        each batch cost ~25 ms of page faults on the bench machine, a quarter of the 11×11 evaluation."""
        size, key = math.prod(shape), (name, like.dtype, like.device)
        buffer = self._workspaces.get(key)
        if buffer is None or buffer.numel() < size:
            with torch.inference_mode(False):  # usable as ``out=`` in and out of inference mode
                buffer = self._workspaces[key] = torch.empty(size, dtype=like.dtype, device=like.device)
        return buffer[:size].view(shape)

    @cached_property
    def weighted(self) -> Tensor:
        """[μλ, λ], L×2C×H×W: the field of the direct path."""
        return torch.cat([self._mean * self._ivar, self._ivar], dim=1)

    @cached_property
    def constant(self) -> Tensor:
        """½(V − A) + log_softmax(π), L×H×W (direct path)."""
        a_term = box_sum_torus((self._mean * self._mean * self._ivar).sum(1, keepdim=True), self.patch_size)
        return 0.5 * (self._v_term - a_term).squeeze(1) + self._log_prior

    @cached_property
    def centre(self) -> Tensor:
        """Per-channel mean of μ (length C), subtracted from μ and x by the fast paths.

        Σ λ (x − μ)² is unchanged when x and μ are shifted alike, but R, Z and A, which cancel
        in R − Z/2 − A/2, shrink: the float32 rounding of the fast paths falls accordingly (the
        shift is a constant: the value and its gradient do not depend on it).
        """
        return self._mean.detach().mean(dim=(0, 2, 3))

    @cached_property
    def centred_mean(self) -> Tensor:
        return self._mean - self.centre[None, :, None, None]

    @cached_property
    def mean_weighted(self) -> Tensor:
        """(μ − centre)λ, L×C×H×W: the only field the constant-λ paths correlate."""
        return self.centred_mean * self._ivar

    @cached_property
    def centred_weighted(self) -> Tensor:
        """[(μ − centre)λ, λ], L×2C×H×W: the field of the FFT path."""
        return torch.cat([self.mean_weighted, self._ivar], dim=1)

    @cached_property
    def centred_constant(self) -> Tensor:
        """½(V − A) + log prior with A the box sum of (μ − centre)²λ, L×H×W (fast paths)."""
        a_term = box_sum_torus((self.centred_mean**2 * self._ivar).sum(1, keepdim=True), self.patch_size)
        return 0.5 * (self._v_term - a_term).squeeze(1) + self._log_prior

    def centred_patches(self, patches: Tensor) -> Tensor:
        return patches - self.centre.to(patches.dtype)[None, :, None, None]

    @property
    def half(self) -> int:
        return self.patch_size // 2

    def _require_constant_ivar(self) -> Tensor:
        if self.constant_ivar is None:
            raise ValueError(
                "the constant_ivar paths need λ constant over positions and no gradient w.r.t. λ"
            )
        return self.constant_ivar

    @cached_property
    def padded(self) -> Tensor:
        """[μλ, λ] circularly padded by p on every side: a *valid* w×w correlation gives H×W outputs."""
        return _pad_torus(self.weighted, self.half)

    @cached_property
    def padded_mean_weighted(self) -> Tensor:
        """(μ − centre)λ circularly padded by p on every side (constant-λ direct path), channels-last:
        oneDNN's convolution ran 1.3–1.4× faster on it for 7×7 and 11×11 kernels (bench machine);
        the output then comes channels-last too (patch index innermost)."""
        self._require_constant_ivar()
        padded = _pad_torus(self.mean_weighted, self.half)
        return padded.contiguous(memory_format=torch.channels_last)

    @cached_property
    def fft_length(self) -> int:
        """Row DFT length n: W itself (the torus is then exactly circular) or a size ≥ W + 2p (a
        *linear* correlation of the circularly extended rows is then exact), the cheaper for the
        backend that will run the inverse row DFT (see :func:`row_fft_length`)."""
        correlated = self.channels if self.constant_ivar is not None else 2 * self.channels
        return row_fft_length(self.width, self.patch_size, correlated, self.inverse_on_pocketfft)

    @cached_property
    def inverse_on_pocketfft(self) -> bool:
        """Whether the FFT paths' inverse row DFT will run on pocketfft (CPU, no gradient w.r.t. the
        parameters; see :func:`eolabels.epitome.dft.inverse_row_dft`), which sets the row length
        and the cost weights of ``method="auto"``.  Judged from the parameters when the fields are
        built: patches that require a gradient send the inverse to torch all the same, which then
        runs the length chosen here (only slower, never different values)."""
        tracked = gradient_tracked(self._mean, self._ivar, self._log_prior)
        return inverse_dft_on_pocketfft(self._mean.device, tracked)

    @cached_property
    def log_joint_bound(self) -> float:
        """max_s ½V(s) + log prior(s): no patch has a larger log p(x, s) (the quadratic term is ≤ 0),
        and a patch cut from the epitome attains it at its own position when λ and π are constant
        there (a self-epitome, spec §7), so (E − bound)/T needs no search for the maximum."""
        return float((0.5 * self._v_term.squeeze(1) + self._log_prior).max().detach())

    @property
    def row_spectrum_columns(self) -> Tensor:
        """Row spectra of the centred [μλ, λ] unfolded along the height (G×(L·H)×(2C·w), complex).

        Entry [g, l·H + u, k·w + i] is the g-th row-DFT coefficient of field channel k, layer l, at
        epitome row (u + i − p) mod H: one batched matrix product per frequency then gives the
        correlation along the height, the DFT having done the width (see :func:`log_joint_fft`).
        """
        return self._unfolded_row_spectrum(self.centred_weighted)

    @property
    def mean_row_spectrum_columns(self) -> Tensor:
        """As :attr:`row_spectrum_columns` for (μ − centre)λ alone, G×(L·H)×(C·w) (constant-λ FFT)."""
        self._require_constant_ivar()
        return self._unfolded_row_spectrum(self.mean_weighted)

    @cached_property
    def product_matrices(self) -> Tensor:
        """Real form of :attr:`row_spectrum_columns` for the per-frequency product, with one extra
        row pair holding the row spectrum of ``centred_constant``: G×(2·(2C·w + 1))×(2·L·H).

        See :func:`_real_product_matrices`: a kernel "channel" whose row spectrum is 1 at every
        frequency picks that row up, so the product itself adds the parameter-only terms and the
        inverse DFT returns R − Z/2 + constant directly.  Only this real form is cached (the
        complex columns are derived on demand).
        """
        return _real_product_matrices(self.row_spectrum_columns, self.constant_spectrum)

    @cached_property
    def mean_product_matrices(self) -> Tensor:
        """As :attr:`product_matrices` for (μ − centre)λ alone (constant-λ FFT path), plus one row
        per layer that spreads n·(that layer's per-patch offset) over the layer's positions."""
        layer_rows = torch.zeros(self.fft_length // 2 + 1, self.layers, self.layers, self.height, 2)
        layer_rows[0, ..., 0] = self.fft_length * torch.eye(self.layers)[:, :, None]  # n·c at frequency 0
        layer_rows = layer_rows.view(layer_rows.shape[0], self.layers, -1).to(self.constant_spectrum)
        extra = torch.cat([self.constant_spectrum, layer_rows], dim=1)
        return _real_product_matrices(self.mean_row_spectrum_columns, extra)

    def blocked(self, patches: Tensor) -> bool:
        """Whether the FFT paths take the blocked height engine (:mod:`eolabels.epitome.blocked_fft`):
        for large patches and only when no gradient is needed (its intermediates go to reused
        buffers through ``out=``)."""
        if self.patch_size < BLOCKED_FFT_MIN_PATCH:
            return False
        return not gradient_tracked(patches, self._mean, self._ivar, self._log_prior)

    @property
    def product_matrix_elements(self) -> int:
        """Size of :attr:`product_matrices`, G×(2·(2C·w + 1))×(2·L·H)."""
        frequencies = self.fft_length // 2 + 1
        return frequencies * 2 * (2 * self.channels * self.patch_size + 1) * 2 * self.layers * self.height

    @cached_property
    def block_plan(self) -> BlockPlan:
        return block_plan(self.patch_size, self.height)

    @cached_property
    def blocked_spectra(self) -> Tensor:
        """Window spectra of the centred [μλ, λ] for the blocked engine (see :func:`window_spectra`)."""
        return window_spectra(self.centred_weighted.detach(), self.patch_size, self.fft_length, self.block_plan)

    @cached_property
    def mean_blocked_spectra(self) -> Tensor:
        """As :attr:`blocked_spectra` for (μ − centre)λ alone (constant-λ FFT path)."""
        self._require_constant_ivar()
        return window_spectra(self.mean_weighted.detach(), self.patch_size, self.fft_length, self.block_plan)

    @cached_property
    def constant_spectrum(self) -> Tensor:
        """Row DFT (length n) of ``centred_constant`` as interleaved (re, im) pairs, G×1×(2·L·H)."""
        spectrum = torch.fft.rfft(self.centred_constant, n=self.fft_length, dim=-1)  # L×H×G
        pairs = torch.view_as_real(spectrum.reshape(-1, spectrum.shape[-1]).T)  # G×(L·H)×2
        return pairs.reshape(pairs.shape[0], 1, -1)

    def _unfolded_row_spectrum(self, field: Tensor) -> Tensor:
        p, w, n = self.half, self.patch_size, self.fft_length
        if n == self.width:
            # circular DFT of the torus row itself; rolling by p puts window start (v − p) at v
            rows = torch.roll(field, shifts=p, dims=-1) if p else field
        else:
            rows = F.pad(field, (p, p, 0, 0), mode="circular") if p else field
        spectrum = torch.fft.rfft(rows, n=n, dim=-1)  # L×K×H×G
        device = spectrum.device
        offsets = torch.arange(self.height, device=device)[:, None] + torch.arange(w, device=device) - p
        unfolded = spectrum[:, :, offsets % self.height, :]  # L×K×H×w×G
        return unfolded.permute(4, 0, 2, 1, 3).reshape(
            spectrum.shape[-1], self.layers * self.height, field.shape[1] * w
        )


def _real_product_matrices(columns: Tensor, extra_rows: Tensor) -> Tensor:
    """Per frequency g, the real matrix M_g (2(K+E)×2P) with [Kr | Ki] M_g = interleaved (re, im) of
    (A_g (Kr + i Ki))ᵀ + Kr·extra_rows_g, for A_g = ``columns[g]`` (P×K complex) and ``extra_rows``
    (G×E×2P, interleaved pairs) met by E extra real kernel entries.

    A complex product (A_r + i A_i)(K_r + i K_i) has real part A_r K_r − A_i K_i and imaginary part
    A_i K_r + A_r K_i; interleaving the output columns (position, re/im) lets the real batched
    product write a tensor that is viewed as complex without a copy.
    """
    real, imag = columns.real.transpose(1, 2), columns.imag.transpose(1, 2)  # G×K×P each
    frequencies, positions, correlated = columns.shape
    extras = extra_rows.shape[1]
    matrices = real.new_zeros(frequencies, 2, correlated + extras, positions, 2)
    matrices[:, 0, :correlated, :, 0] = real  # rows multiplying K_r
    matrices[:, 0, :correlated, :, 1] = imag
    matrices[:, 1, :correlated, :, 0] = -imag  # rows multiplying K_i
    matrices[:, 1, :correlated, :, 1] = real
    matrices[:, 0, correlated:] = extra_rows.view(frequencies, extras, positions, 2)
    return matrices.view(frequencies, 2 * (correlated + extras), 2 * positions)


def gradient_tracked(*tensors: Tensor) -> bool:
    """Whether autograd will record an operation on any of ``tensors``."""
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def constant_ivar(ivar: Tensor) -> Tensor | None:
    """λ as an L×C matrix when it is constant over positions and needs no gradient, else None.

    With a gradient the specialisation would route ∂/∂λ to a single pixel, so it is never used then.
    """
    if gradient_tracked(ivar):
        return None
    corner = ivar[:, :, :1, :1]
    if not bool((ivar == corner).all()):
        return None
    return corner[:, :, 0, 0].detach()


def _pad_torus(field: Tensor, half: int) -> Tensor:
    return F.pad(field, (half, half, half, half), mode="circular") if half else field


def fft_size_penalty(n: int) -> float | None:
    """Relative cost per DFT flop of length n (MKL on the bench machine): 1 for 2·3·5-smooth sizes,
    1.25 with factors of 7 (315 = 3²·5·7 ran 1.2× slower than 320), None (unusable: 299 = 13·23
    ran 3× slower than 320) with any larger prime factor."""
    rest = _strip_factors(n, (2, 3, 5))
    if rest == 1:
        return 1.0
    return 1.25 if _strip_factors(rest, (7,)) == 1 else None


def pocketfft_size_penalty(n: int) -> float:
    """As :func:`fft_size_penalty` for the inverse row DFT through scipy's pocketfft (CPU, no
    gradient; :func:`eolabels.epitome.dft.inverse_row_dft`), which handles other sizes far better:
    per n·log2 n on the bench machine, 2·3·5·7-smooth sizes as MKL, sizes whose prime factors are
    all ≤ 31 ran 1.4–1.7× slower (299 = 13·23: 1.4×), sizes with a larger prime factor (Bluestein)
    4–5× slower."""
    penalty = fft_size_penalty(n)
    if penalty is not None:
        return penalty
    return 1.6 if _strip_factors(n, (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31)) == 1 else 4.5


def _strip_factors(n: int, factors: tuple[int, ...]) -> int:
    for factor in factors:
        while n % factor == 0:
            n //= factor
    return n


def _row_fft_cost(length: int, patch_size: int, correlated_channels: int, pocketfft: bool = False) -> float | None:
    """Weighted flops per patch and epitome row of the FFT path for DFT length n (see fft_cost)."""
    penalty = pocketfft_size_penalty(length) if pocketfft else fft_size_penalty(length)
    if penalty is None:
        return None
    weights = cost_weights(pocketfft)
    matmul = 8.0 * (length // 2 + 1) * correlated_channels * patch_size
    return weights.matmul * matmul + weights.fft_flop * penalty * 2.5 * length * math.log2(length)


def row_fft_length(width: int, patch_size: int, correlated_channels: int = 8, pocketfft: bool = False) -> int:
    """DFT length n of the FFT paths, cheapest under the cost model among: W itself (exact circular
    correlation on the torus) and the sizes n ≥ W + 2p (exact linear correlation of the circularly
    extended row) up to 2(W + 2p), with the size penalties of MKL, or of pocketfft where the inverse
    row DFT runs there (``pocketfft``); sizes MKL cannot do fast are never taken for MKL."""
    shortest = width + 2 * (patch_size // 2)
    candidates = [width] + list(range(shortest, 2 * shortest + 1))
    costs = {n: _row_fft_cost(n, patch_size, correlated_channels, pocketfft) for n in candidates}
    return min((cost, n) for n, cost in costs.items() if cost is not None)[1]


def box_sum_torus(field: Tensor, size: int) -> Tensor:
    """Sum of ``field`` (N×K×H×W) over the size×size window centred on each pixel, wrapping."""
    p = size // 2
    padded = F.pad(field, (p, p, p, p), mode="circular") if p else field
    return F.avg_pool2d(padded, size, stride=1) * (size * size)


def patch_kernels(patches: Tensor) -> Tensor:
    """Stacked correlation kernels [x, −x²/2] (B×2C×w×w) so one correlation gives R − Z/2."""
    return torch.cat([patches, -0.5 * patches * patches], dim=1)


def log_joint_direct(fields: EpitomeFields, patches: Tensor, scale: float = 1.0, shift: float = 0.0) -> Tensor:
    """log p(x_b, s) by direct valid cross-correlation on the padded torus (spec §2), L×B×H×W.

    Every path returns ``scale``·log p + ``shift`` (e.g. 1/T and −bound/T for tempered posteriors)
    with the scale on its kernels and the shift on its constant terms: no pass over the output."""
    _check_patches(fields, patches)
    correlation = F.conv2d(fields.padded, _scaled(patch_kernels(patches), scale))
    return correlation.add_(_affine(fields.constant, scale, shift).unsqueeze(1))


def log_joint_fft(fields: EpitomeFields, patches: Tensor, scale: float = 1.0, shift: float = 0.0) -> Tensor:
    """log p(x_b, s) with a DFT along the width and a matrix product along the height, L×B×H×W.

    Field rows (circular, or circularly extended by p for a linear correlation) and patch rows are
    transformed with length n = ``fields.fft_length``; the patch rows, only w of n samples non-zero,
    by a w×(2G) DFT matrix product.  Per frequency, the correlation along the height is one
    B×(2·2C·w) by (2·2C·w)×(2·L·H) real product (a complex product in real form) that sums R − Z/2
    over all channels and, through one extra kernel row, adds the spectrum of the parameter-only
    terms, so each output row needs a single inverse real DFT and nothing is added afterwards.  For w ≥
    ``BLOCKED_FFT_MIN_PATCH`` with no gradient to track, the height correlation is instead blocked
    overlap-save (:mod:`eolabels.epitome.blocked_fft`, fewer operations per output for large w)
    and the parameter-only terms are added to its output.  (A ``shift`` costs one pass over the
    output here, on the w-tap product only.)
    """
    _check_patches(fields, patches)
    kernels = _scaled(patch_kernels(fields.centred_patches(patches)), scale)
    if fields.blocked(patches):
        correlation = _correlate_blocked(fields, fields.blocked_spectra, kernels)
        return correlation.add_(_affine(fields.centred_constant, scale, shift).unsqueeze(1))
    correlation = _correlate_rows_fft(fields, fields.product_matrices, kernels, impulse=scale)
    return correlation.add_(shift) if shift else correlation


def log_joint_constant_ivar(fields: EpitomeFields, patches: Tensor, scale: float = 1.0, shift: float = 0.0) -> Tensor:
    """log p(x_b, s) when λ is constant over positions: direct correlation of μλ alone, L×B×H×W.

    With λ_{l,k} constant, Z = Σ_k λ_{l,k}‖x_{b,k}‖² is a per-(layer, patch) offset, so
    log p = corr(μλ, x) − Z/2 + ½(V − A) + log_softmax(π): the same value as spec §2 eq. (1)
    with C instead of 2C correlated channels.
    """
    _check_patches(fields, patches)
    centred = fields.centred_patches(patches)
    offset = _affine(_constant_ivar_offset(fields, centred, with_constant=False), scale, shift)  # L×B×1×1
    kernels = _scaled(centred, scale)
    if fields.layers == 1:  # the per-patch offset rides on the convolution's bias
        correlation = F.conv2d(fields.padded_mean_weighted, kernels, bias=offset[0, :, 0, 0])
    else:
        correlation = F.conv2d(fields.padded_mean_weighted, kernels).add_(offset)
    return correlation.add_(_scaled(fields.centred_constant, scale).unsqueeze(1))


def log_joint_constant_ivar_fft(
    fields: EpitomeFields, patches: Tensor, scale: float = 1.0, shift: float = 0.0
) -> Tensor:
    """:func:`log_joint_constant_ivar` with the correlation of :func:`log_joint_fft`, L×B×H×W."""
    _check_patches(fields, patches)
    centred = fields.centred_patches(patches)
    offset = _affine(_constant_ivar_offset(fields, centred, with_constant=False), scale, shift)  # L×B×1×1
    if fields.blocked(patches):
        correlation = _correlate_blocked(fields, fields.mean_blocked_spectra, _scaled(centred, scale))
        return correlation.add_(_scaled(fields.centred_constant, scale).unsqueeze(1) + offset)
    return _correlate_rows_fft(
        fields, fields.mean_product_matrices, _scaled(centred, scale), offset[:, :, 0, 0], impulse=scale
    )


def _scaled(tensor: Tensor, scale: float) -> Tensor:
    return tensor if scale == 1.0 else tensor * scale


def _affine(tensor: Tensor, scale: float, shift: float) -> Tensor:
    return tensor if scale == 1.0 and shift == 0.0 else tensor * scale + shift


def _correlate_blocked(fields: EpitomeFields, spectra: Tensor, kernels: Tensor) -> Tensor:
    return correlate_blocked(
        spectra, kernels, fields.block_plan, fields.layers, fields.height, fields.width, fields.fft_length,
        workspace=fields.workspace,
    )


def _constant_ivar_offset(fields: EpitomeFields, centred: Tensor, with_constant: bool = True) -> Tensor:
    """−½ Σ_k λ_{l,k} ‖x_{b,k} − centre_k‖² (L×B×1×1), plus the centred ½(V − A) + log prior
    (to L×B×H×W) if asked."""
    ivar = fields._require_constant_ivar()
    ivar = ivar.to(centred.dtype)
    squared_norms = (centred * centred).sum((-2, -1))  # B×C
    offset = -0.5 * (squared_norms @ ivar.T).T[:, :, None, None]  # L×B×1×1
    return fields.centred_constant.unsqueeze(1) + offset if with_constant else offset


def _correlate_rows_fft(
    fields: EpitomeFields, matrices: Tensor, kernels: Tensor, offset: Tensor | None = None, impulse: float = 1.0
) -> Tensor:
    """Σ_k corr(field_k, kernel_{b,k}) + ``impulse``·``centred_constant`` (+ ``offset[l, b]``) on the
    torus, L×B×H×W, from the real product matrices of the field.  Both additions ride on the
    product: a kernel row that is an impulse of height ``impulse`` (row spectrum ``impulse`` at every
    frequency) meets the constant's spectrum in ``matrices``, and the offsets enter as frequency-0
    entries meeting one row per layer, so there is no accumulator to fill and no pass over the output."""
    layers, height, width, n = fields.layers, fields.height, fields.width, fields.fft_length
    batch, size = kernels.shape[0], kernels.shape[-1]
    frequencies = n // 2 + 1
    extras = matrices.shape[1] // 2 - kernels.shape[1] * size  # 1, or 1 + L with offsets
    dft = row_dft_matrix(size, n, kernels.dtype, kernels.device)  # (G·2)×w
    rows = kernels.permute(3, 1, 2, 0).reshape(size, -1)  # w×(K·w·B)
    impulses = rows.new_zeros(size, extras * batch)
    impulses[0, :batch] = impulse  # the constant's kernel entry: an impulse at j = 0
    spectrum = (dft @ torch.cat([rows, impulses], dim=1)).view(frequencies, -1, batch)  # G×(2·(K·w+E))×B
    if offset is not None:  # real part at frequency 0 of the per-layer offset entries
        spectrum.view(frequencies, 2, -1, batch)[0, 0, -layers:] = offset.to(spectrum.dtype)
    if gradient_tracked(spectrum, matrices):
        product = torch.bmm(spectrum.transpose(1, 2), matrices)  # G×B×(2·L·H)
    else:  # only the inverse DFT reads the product: it can live in the reused workspace
        shape = (frequencies, batch, matrices.shape[-1])
        product = torch.bmm(spectrum.transpose(1, 2), matrices, out=fields.workspace(shape, matrices, "product"))
    product = torch.view_as_complex(product.view(frequencies, batch, -1, 2))  # G×B×(L·H)
    out = inverse_row_dft(product.permute(1, 2, 0), n)  # B×(L·H)×n
    return out.view(batch, layers, height, n)[..., :width].transpose(0, 1)


def _check_patches(fields: EpitomeFields, patches: Tensor) -> None:
    if patches.dim() != 4 or patches.shape[1] != fields.channels or patches.shape[-2:] != (
        fields.patch_size,
        fields.patch_size,
    ):
        raise ValueError(
            f"patches must be B×{fields.channels}×{fields.patch_size}×{fields.patch_size}, "
            f"got {tuple(patches.shape)}"
        )


def direct_cost(
    layers: int, channels: int, height: int, width: int, patch_size: int,
    constant_ivar: bool = False, pocketfft: bool = False,
) -> float:
    """Weighted flops per patch of the direct correlation: 2·L·H·W·K·w² (K = 2C, C when λ is
    constant) plus the weight of its L·H·W outputs (see :class:`CostWeights`)."""
    correlated = channels if constant_ivar else 2 * channels
    weights = cost_weights(pocketfft)
    positions = layers * height * width
    output = weights.constant_ivar_output if constant_ivar else weights.direct_output
    return positions * (2.0 * correlated * patch_size**2 + _memory_bound(positions) * output)


def fft_cost(
    layers: int, channels: int, height: int, width: int, patch_size: int,
    constant_ivar: bool = False, pocketfft: bool = False,
) -> float:
    """Weighted flops per patch of the FFT path: the per-frequency complex product, the row DFTs
    and its outputs, weighted for the backend of the inverse row DFT (see :class:`CostWeights`)."""
    correlated = channels if constant_ivar else 2 * channels
    n = row_fft_length(width, patch_size, correlated, pocketfft)
    rows = _row_fft_cost(n, patch_size, correlated, pocketfft)
    output = _memory_bound(layers * height * width) * cost_weights(pocketfft).fft_output
    return layers * height * (rows + output * width)


def choose_method(
    layers: int, channels: int, height: int, width: int, patch_size: int,
    constant_ivar: bool = False, pocketfft: bool = False,
) -> str:
    """The cheaper path under the cost model above: ``"direct"``/``"fft"``, or with λ constant over
    positions (and no gradient) ``"constant_ivar"``/``"constant_ivar_fft"``.  ``pocketfft``: weigh
    for an evaluation whose inverse row DFT runs on pocketfft (CPU, no gradient)."""
    shape = (layers, channels, height, width, patch_size, constant_ivar, pocketfft)
    cheaper_fft = fft_cost(*shape) < direct_cost(*shape)
    if constant_ivar:
        return "constant_ivar_fft" if cheaper_fft else "constant_ivar"
    return "fft" if cheaper_fft else "direct"


def resolve_method(fields: EpitomeFields, method: Method = "auto") -> str:
    """The path ``method`` names; for ``"auto"`` the cheapest under :func:`choose_method`, except
    that with a gradient to track the FFT path is only taken while its product matrices stay below
    ``GRAD_FFT_MAX_MATRIX_ELEMENTS`` (its backward forms their gradient)."""
    if method != "auto":
        return method
    chosen = choose_method(
        fields.layers, fields.channels, fields.height, fields.width, fields.patch_size,
        constant_ivar=fields.constant_ivar is not None, pocketfft=fields.inverse_on_pocketfft,
    )
    large = fields.product_matrix_elements > GRAD_FFT_MAX_MATRIX_ELEMENTS
    if chosen == "fft" and large and gradient_tracked(fields._mean, fields._ivar):
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
    (float32 rounding aside) and ``"auto"`` picks the cheapest under :func:`choose_method`.  With
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
