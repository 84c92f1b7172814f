"""Parameter-only terms of the log joint, built once per parameter update (spec §2) and reused.

:class:`EpitomeFields` holds, for one patch side, everything of eq. (1) that does not depend on the
patches: the weighted fields the paths correlate, the constant terms ½(V − A) + log prior, and the
forms each fast path needs (circularly padded fields, unfolded row spectra, real product matrices,
window spectra of the blocked engine), each derived on first use and cached.
"""

from __future__ import annotations

import math
from functools import cached_property

import torch
import torch.nn.functional as F
from torch import Tensor

from eolabels.epitome.blocked_fft import BlockPlan, block_plan, window_spectra
from eolabels.epitome.cost_model import blocked_height_pays, row_fft_length
from eolabels.epitome.dft import inverse_dft_on_pocketfft
from eolabels.epitome.terms import box_sum_torus, gradient_tracked, pad_torus


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
        self._subgrid_columns: dict[int, Tensor] = {}

    def workspace(self, shape: tuple[int, ...], like: Tensor, name: str) -> Tensor:
        """A scratch tensor of ``shape`` reused across calls (grown as needed; one per ``name``, dtype
        and device), for intermediates that never leave a log-joint evaluation: a fresh buffer of
        that size each batch pays its page faults again, a sizeable share of a batch's evaluation."""
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
    def mean_weighted_rows(self) -> Tensor:
        """(μ − centre)λ positions-major, (L·H·W)×C: the rows the top-K path gathers windows from."""
        return self.mean_weighted.permute(0, 2, 3, 1).reshape(-1, self.channels).contiguous()

    @cached_property
    def weighted_rows(self) -> Tensor:
        """[μλ, λ] positions-major, (L·H·W)×2C (top-K path, λ varying)."""
        return self.weighted.permute(0, 2, 3, 1).reshape(-1, 2 * self.channels).contiguous()

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

    def require_constant_ivar(self) -> Tensor:
        """λ as an L×C matrix, for the constant-λ paths (which are wrong for any other λ)."""
        if self.constant_ivar is None:
            raise ValueError(
                "the constant_ivar paths need λ constant over positions and no gradient w.r.t. λ"
            )
        return self.constant_ivar

    @cached_property
    def padded(self) -> Tensor:
        """[μλ, λ] circularly padded by p on every side: a *valid* w×w correlation gives H×W outputs."""
        return pad_torus(self.weighted, self.half)

    @cached_property
    def padded_mean_weighted(self) -> Tensor:
        """(μ − centre)λ circularly padded by p on every side (constant-λ direct path), channels-last:
        oneDNN's convolution is faster on it for the 7×7 and 11×11 kernels of self-epitomic LSR;
        the output then comes channels-last too (patch index innermost)."""
        self.require_constant_ivar()
        padded = pad_torus(self.mean_weighted, self.half)
        return padded.contiguous(memory_format=torch.channels_last)

    def subgrid_columns(self, stride: int) -> Tensor:
        """The field's w×w windows at the subgrid positions (l, a·f, b·f), f = ``stride``, with two
        rows below them, the positions' constant and ones: L×(D + 2)×(Hc·Wc), D = C·w² (constant λ:
        the windows of (μ − centre)λ) or 2C·w² ([μλ, λ]).  The coarse log joint of the top-K search
        (:mod:`eolabels.epitome.topk`) is then one matrix product.  Cached per stride (without
        gradient: the search never differentiates)."""
        columns = self._subgrid_columns.get(stride)
        if columns is None:
            if self.constant_ivar is not None:
                field, constant = self.padded_mean_weighted, self.centred_constant
            else:
                field, constant = self.padded, self.constant
            with torch.no_grad():
                windows = F.unfold(field, self.patch_size, stride=stride)  # L×D×(Hc·Wc)
                below = constant[:, ::stride, ::stride].flatten(1)[:, None]  # L×1×(Hc·Wc)
                columns = torch.cat([windows, below, torch.ones_like(below)], dim=1)
            self._subgrid_columns[stride] = columns
        return columns

    @cached_property
    def fft_length(self) -> int:
        """Row DFT length n: W itself (the torus is then exactly circular) or a size ≥ W + 2p (a
        *linear* correlation of the circularly extended rows is then exact), the cheaper for the
        backend that will run the inverse row DFT (see
        :func:`eolabels.epitome.cost_model.row_fft_length`)."""
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
        correlation along the height, the DFT having done the width (see
        :func:`eolabels.epitome.fast_paths.log_joint_fft`).
        """
        return self._unfolded_row_spectrum(self.centred_weighted)

    @property
    def mean_row_spectrum_columns(self) -> Tensor:
        """As :attr:`row_spectrum_columns` for (μ − centre)λ alone, G×(L·H)×(C·w) (constant-λ FFT)."""
        self.require_constant_ivar()
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
        if not blocked_height_pays(self.patch_size):
            return False
        return not gradient_tracked(patches, self._mean, self._ivar, self._log_prior)

    def tracks_gradient(self) -> bool:
        """Whether autograd records operations on μ or λ now (the FFT path's backward then forms the
        gradient of its product matrices)."""
        return gradient_tracked(self._mean, self._ivar)

    def check_patches(self, patches: Tensor) -> None:
        """Fail with the expected shape unless ``patches`` is B×C×w×w for these fields."""
        if patches.dim() != 4 or patches.shape[1] != self.channels or patches.shape[-2:] != (
            self.patch_size,
            self.patch_size,
        ):
            raise ValueError(
                f"patches must be B×{self.channels}×{self.patch_size}×{self.patch_size}, "
                f"got {tuple(patches.shape)}"
            )

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
        self.require_constant_ivar()
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
