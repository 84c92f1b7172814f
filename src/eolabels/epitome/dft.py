"""Row DFT helpers shared by the epitome's FFT paths (:mod:`eolabels.epitome.fast_paths`,
:mod:`eolabels.epitome.blocked_fft`)."""

from __future__ import annotations

import functools
import math

import scipy.fft
import torch
from torch import Tensor


@functools.lru_cache(maxsize=32)
@torch.inference_mode(False)
def row_dft_matrix(size: int, length: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """(2G)×w matrix of the *conjugated* real-input DFT of length n restricted to the first w
    samples: rows (g, re) = cos(2π g j / n) and (g, im) = sin(2π g j / n), so M xᵀ is conj(rfft(x, n)).
    Cached (read-only: never modify the returned tensor; built outside inference mode so that a
    later autograd call may use it)."""
    j = torch.arange(size, dtype=torch.float64, device=device)
    g = torch.arange(length // 2 + 1, dtype=torch.float64, device=device)
    angle = (2 * math.pi / length) * torch.outer(g, j)
    return torch.stack([torch.cos(angle), torch.sin(angle)], dim=1).reshape(-1, size).to(dtype)


def inverse_dft_on_pocketfft(device: torch.device, requires_grad: bool) -> bool:
    """Whether :func:`inverse_row_dft` runs through scipy's pocketfft (CPU, no gradient)."""
    return device.type == "cpu" and not requires_grad


def inverse_row_dft(spectrum: Tensor, length: int) -> Tensor:
    """``torch.fft.irfft(spectrum, n=length, dim=-1)``, through scipy's pocketfft on CPU when no
    gradient flows: with as many workers as torch has threads it is faster than torch's MKL
    inverse on CPU (bench/epitome.py) and reads a strided input in place, where torch copies it
    first."""
    if not inverse_dft_on_pocketfft(spectrum.device, spectrum.requires_grad):
        return torch.fft.irfft(spectrum, n=length, dim=-1)
    rows = scipy.fft.irfft(spectrum.numpy(), n=length, axis=-1, workers=torch.get_num_threads())
    return torch.from_numpy(rows)
