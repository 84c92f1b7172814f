"""Torus cross-correlation of a fixed field with a batch of large kernels: a DFT along the width and
blocked overlap-save along the height (the large-patch engine of the epitome's FFT paths).

    out[l, b, u, v] = Σ_k Σ_{i,j} kernel[b, k, i, j] · field[l, k, (u + i − p) mod H, (v + j − p) mod W]

The width is transformed as in :func:`eolabels.epitome.fast_paths.log_joint_fft` (a real DFT of length n
of the circular, or circularly extended, rows).  Along the height, instead of a w-tap product per
frequency, the w taps are split into q blocks of s taps and the output rows into tiles of T rows
(T a multiple of s).  Tile t meets tap block a on the window of F ≥ T + s − 1 field rows starting
at row t·T + a·s; there an s-tap correlation is a pointwise product in the F-point height DFT, so
per 2-D frequency (f, g) the whole correlation is one real matrix product of the precomputed
(2·L·tiles)×(2·K·q) window spectra with the (2·K·q)×B kernel block spectra, followed by an F → T
inverse height DFT and the inverse row DFT.  Per patch and width frequency this does ~123 k real MACs at
w = 31 against ~297 k for the w-tap product (exact: same values to float32 rounding).

The plan (s = ⌈w/2⌉, T = s, F = T + s − 1) and the 8-frequency chunks keep each chunk's
intermediates in cache (both chosen with bench/epitome.py); the engine pays from a patch side on
(:func:`eolabels.epitome.cost_model.blocked_height_pays`), helped at N = 299 by the 299-point
circular row DFT that pocketfft makes worthwhile.  The channel sum is written window rows by
patches (the B patches the narrow side of each small product, the faster order), then reordered
in cache so that the inverse height DFT writes rows (layer, patch, output row) and the inverse
row DFT reads and writes them in memory order.  No gradient flows through it (its intermediates
are written into reused buffers with ``out=``), so the FFT paths use it only when none is needed.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from eolabels.epitome.dft import inverse_row_dft, row_dft_matrix

FREQUENCIES_PER_CHUNK = 8


@dataclass(frozen=True)
class BlockPlan:
    """Height blocking for patch side w on an epitome of height H (see the module docstring); any
    T (a multiple of s) and F ≥ T + s − 1 are exact, :func:`block_plan` picks the measured best."""

    taps: int  # s, height taps per block
    blocks: int  # q = ⌈w / s⌉ (taps past w are zero)
    tile: int  # T output rows per tile, a multiple of s
    length: int  # F ≥ T + s − 1, height DFT length of a window
    tiles: int  # ⌈H / T⌉

    @property
    def windows(self) -> int:
        """Distinct windows: tile t and block a start at row (t·T/s + a)·s."""
        return self.tiles * (self.tile // self.taps) + self.blocks - 1

    def window_index(self) -> Tensor:
        """tiles×blocks index of the window that tile t meets block a on."""
        return torch.arange(self.tiles)[:, None] * (self.tile // self.taps) + torch.arange(self.blocks)


def block_plan(patch_size: int, height: int) -> BlockPlan:
    taps = (patch_size + 1) // 2
    tile = taps
    return BlockPlan(taps, -(-patch_size // taps), tile, tile + taps - 1, -(-height // tile))


def window_spectra(field: Tensor, patch_size: int, fft_length: int, plan: BlockPlan) -> Tensor:
    """Real-form 2-D spectra of the field windows, (G·F)×(2·L·tiles)×(2·K·q), float of ``field``.

    Rows (output re/im, layer l, tile t), columns (kernel part re/im, channel k, block a): this
    matrix times a column of kernel block spectra [Hr; Hi] is the real then the imaginary part of
    Σ_{k,a} H·X, the complex product (Hr + iHi)(Xr + iXi) written as real products.  The B kernel
    columns are the product's narrow side: the batched product runs faster with the 2·L·tiles
    window rows first than with the patches first.
    """
    layers, channels, height, width = field.shape
    p = patch_size // 2
    rows = (torch.arange(plan.windows)[:, None] * plan.taps + torch.arange(plan.length) - p) % height
    span = width if fft_length == width else width + 2 * p  # circular row, or circularly extended
    cols = (torch.arange(span) - p) % width
    windows = field.double()[:, :, rows][..., cols]  # L×K×windows×F×span
    spectra = torch.fft.rfft2(windows, s=(plan.length, fft_length))  # L×K×windows×F×G
    per_tile = spectra[:, :, plan.window_index()]  # L×K×tiles×q×F×G
    x = per_tile.permute(5, 4, 0, 2, 1, 3)  # G×F×L×tiles×K×q
    real, imag = x.real, x.imag
    # output re = Hr·Xr − Hi·Xi, output im = Hr·Xi + Hi·Xr
    matrix = torch.stack([torch.stack([real, -imag], 4), torch.stack([imag, real], 4)], dim=2)
    frequencies = fft_length // 2 + 1
    return matrix.reshape(
        frequencies * plan.length, 2 * layers * plan.tiles, 2 * channels * plan.blocks
    ).to(field.dtype).contiguous()


@functools.lru_cache(maxsize=32)
@torch.inference_mode(False)
def _height_dft_matrices(plan: BlockPlan, dtype: torch.dtype, device: torch.device) -> tuple[Tensor, Tensor]:
    """Conjugated height DFT of a tap block, (2F)×(2s), and the F → T inverse height DFT (1/F
    included), (2F)×(2T), both in real form.  Cached (read-only; built outside inference mode so that
    a later autograd call may use them)."""
    f = torch.arange(plan.length, dtype=torch.float64)
    phase = (2 * math.pi / plan.length) * torch.outer(f, torch.arange(plan.taps, dtype=torch.float64))
    cos, sin = torch.cos(phase), torch.sin(phase)
    # (a + ib)·e^{+iθ}: rows (f, re) = [cos | −sin], (f, im) = [sin | cos] over columns (re/im, tap)
    height_dft = torch.stack([torch.cat([cos, -sin], 1), torch.cat([sin, cos], 1)], dim=1)
    phase = (2 * math.pi / plan.length) * torch.outer(f, torch.arange(plan.tile, dtype=torch.float64))
    cos, sin = torch.cos(phase) / plan.length, torch.sin(phase) / plan.length
    # Σ_f (a + ib)·e^{+iθ}: rows (f, re/im) by columns (output row, re/im), interleaved as complex
    inverse = torch.stack([torch.stack([cos, sin], -1), torch.stack([-sin, cos], -1)], dim=1)
    return (
        height_dft.reshape(2 * plan.length, 2 * plan.taps).to(device, dtype),
        inverse.reshape(2 * plan.length, 2 * plan.tile).to(device, dtype),
    )


@torch.no_grad()
def correlate_blocked(
    spectra: Tensor,
    kernels: Tensor,
    plan: BlockPlan,
    layers: int,
    height: int,
    width: int,
    fft_length: int,
    workspace: Callable[[tuple[int, ...], Tensor, str], Tensor] | None = None,
) -> Tensor:
    """Σ_k corr(field_k, kernel_{b,k}) on the torus, L×B×H×W (a view), from :func:`window_spectra`.

    ``workspace(shape, like, name)`` may hand out reused scratch tensors, one per name, for the
    intermediates (see :meth:`eolabels.epitome.fields.EpitomeFields.workspace`)."""
    if workspace is None:
        workspace = lambda shape, like, name: torch.empty(shape, dtype=like.dtype, device=like.device)  # noqa: E731
    batch, channels, size = kernels.shape[0], kernels.shape[1], kernels.shape[-1]
    s, q, length, tiles = plan.taps, plan.blocks, plan.length, plan.tiles
    frequencies = fft_length // 2 + 1
    width_dft = row_dft_matrix(size, fft_length, kernels.dtype, kernels.device)  # (2G)×w
    height_dft, inverse = _height_dft_matrices(plan, kernels.dtype, kernels.device)
    padded = F.pad(kernels, (0, 0, 0, q * s - size))  # taps past w are zero
    rows = padded.view(batch, channels, q, s, size).permute(4, 3, 1, 2, 0).reshape(size, -1)
    row_spectra = workspace((2 * frequencies, rows.shape[1]), rows, "row spectra")
    torch.matmul(width_dft, rows, out=row_spectra)
    row_spectra = row_spectra.view(frequencies, 2 * s, channels * q * batch)  # g, (re/im, tap), (k, a, b)
    columns = layers * batch * tiles
    out = workspace((frequencies, columns, 2 * plan.tile), inverse, "height inverse")
    product = workspace((FREQUENCIES_PER_CHUNK * length, 2 * layers * tiles, batch), inverse, "product")
    ordered = workspace((FREQUENCIES_PER_CHUNK * length, 2, layers, batch, tiles), inverse, "product by patch")
    for start in range(0, frequencies, FREQUENCIES_PER_CHUNK):
        stop = min(frequencies, start + FREQUENCIES_PER_CHUNK)
        count = stop - start
        # kernel block spectra: height DFT per width frequency, rows (f, re/im), columns (k, a, b)
        blocks = torch.bmm(height_dft.expand(count, -1, -1), row_spectra[start:stop])
        blocks = blocks.view(count * length, 2 * channels * q, batch)
        # per (g, f): rows (re/im, l, t), columns b, then reordered in cache to (re/im, l, b, t), so
        # that per g the inverse height DFT reads rows (f, re/im) by columns (l, b, t)
        chunk = torch.bmm(spectra[start * length : stop * length], blocks, out=product[: count * length])
        chunk = chunk.view(count * length, 2, layers, tiles, batch).transpose(-1, -2)
        chunk = ordered[: count * length].copy_(chunk).view(count, 2 * length, columns)
        torch.bmm(chunk.transpose(1, 2), inverse.expand(count, -1, -1), out=out[start:stop])
    spectrum = torch.view_as_complex(out.view(frequencies, layers, batch, tiles * plan.tile, 2))
    rows_out = inverse_row_dft(spectrum.permute(1, 2, 3, 0), fft_length)  # L×B×(tiles·T)×n
    return rows_out[:, :, :height, :width]
