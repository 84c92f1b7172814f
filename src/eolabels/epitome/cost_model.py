"""The flop model behind ``method="auto"``: which exact path of the log joint is cheapest for a shape.

Every path computes the same values (:mod:`eolabels.epitome.model`); they differ in how the work
grows.  The direct correlation costs 2·L·H·W·K·w² flops per patch (K = 2C correlated channels, C
when λ is constant); the FFT paths cost a per-frequency product that grows with w, plus row DFTs
whose speed depends on the factors of their length and on the library that runs them.  Each term
is weighted by a relative throughput (:class:`CostWeights`) and the outputs of memory-bound paths
get a weight of their own.  The weights and thresholds were fitted to the measurements that
``bench/epitome.py`` prints on one CPU; rerun it to refit them on other hardware.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class CostWeights:
    """Weights of the flop model behind ``method="auto"``, in units of one convolution flop."""

    matmul: float  # a flop of the FFT path's batched product
    fft_flop: float  # a flop (2.5·n·log2 n a row) of the inverse row DFT
    fft_output: float  # an output of the FFT path (product and inverse written, read back)
    direct_output: float  # an output of the direct path (written, then the constant added)
    constant_ivar_output: float  # an output of the constant-λ convolution (bias and one in-place add)


# With a gradient the inverse row DFT is torch's (MKL on CPU): the weights are the convolution's
# throughput over that of the complex batched product and of batched inverse real row DFTs, which
# are far slower per flop.  On a GPU (cuFFT) these CPU weights are used too: none have been fitted there.
MKL_COSTS = CostWeights(matmul=1.5, fft_flop=20.0, fft_output=0.0, direct_output=0.0, constant_ivar_output=0.0)
# Without a gradient on CPU it is pocketfft's (embedding, LSR, inference), fitted to no-gradient runs
# over the bench shapes, 299² at w = 3–21, 128², and self-epitomes of 128–512² at w = 5–9.  Each path
# pays per flop and per output: the direct path's output is memory-bound (at small w its time is
# mostly writing the output), so a flop model alone would pick it at 299² for w = 3–7, where the
# FFT path is faster.
POCKETFFT_COSTS = CostWeights(
    matmul=0.9, fft_flop=10.0, fft_output=400.0, direct_output=900.0, constant_ivar_output=340.0
)
# The output weights hold once a batch's output leaves the cache; they ramp in linearly up to this
# many positions L·H·W (below it, e.g. at 64² or 128² with B = 64–256, direct runs at its flop rate
# and beats the FFT path at w = 3).
MEMORY_BOUND_POSITIONS = 1 << 17

# With a gradient to track, the FFT path's backward forms the gradient of its product matrices; above
# this many elements (32 MB of float32: glibc maps larger buffers afresh on every step) that costs
# more than the direct path saves, below it the FFT path wins.
GRAD_FFT_MAX_MATRIX_ELEMENTS = 1 << 23

# Patch side from which the FFT paths correlate along the height by blocked overlap-save (when no
# gradient is needed): its operations per output grow more slowly with w than the w-tap product's,
# which is as fast up to about w = 11–13.
BLOCKED_FFT_MIN_PATCH = 15


def cost_weights(pocketfft: bool) -> CostWeights:
    """The weights for an inverse row DFT on pocketfft, or on torch's FFT."""
    return POCKETFFT_COSTS if pocketfft else MKL_COSTS


def blocked_height_pays(patch_size: int) -> bool:
    """Whether the blocked overlap-save height engine beats the w-tap product at this patch side."""
    return patch_size >= BLOCKED_FFT_MIN_PATCH


def _memory_bound(positions: int) -> float:
    """The share of the output weights that applies at L·H·W = ``positions``."""
    return min(1.0, positions / MEMORY_BOUND_POSITIONS)


def fft_size_penalty(n: int) -> float | None:
    """Relative cost per DFT flop of length n on MKL: 1 for 2·3·5-smooth sizes, 1.25 with factors
    of 7, None (unusable: MKL falls back to a much slower algorithm, e.g. for 299 = 13·23) with any
    larger prime factor."""
    rest = _strip_factors(n, (2, 3, 5))
    if rest == 1:
        return 1.0
    return 1.25 if _strip_factors(rest, (7,)) == 1 else None


def pocketfft_size_penalty(n: int) -> float:
    """As :func:`fft_size_penalty` for the inverse row DFT through scipy's pocketfft (CPU, no
    gradient; :func:`eolabels.epitome.dft.inverse_row_dft`), which handles other sizes far better:
    2·3·5·7-smooth sizes as MKL, sizes whose prime factors are all ≤ 31 (e.g. 299 = 13·23) at a
    moderate penalty, sizes with a larger prime factor (Bluestein's algorithm) at a large one."""
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
