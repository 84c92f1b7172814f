"""Draws of epitome positions from the posterior q(s | x) (spec §5), shared by the sampled label
embedding and the reconstruction of high-res labels, and the windows a drawn position covers.

Posteriors follow the model's convention q[l, b, u, v] (L×B×H×W, each patch summing to 1 over
(l, u, v)); drawn positions are flat indices into L·H·W.
"""

from __future__ import annotations

import torch
from torch import Tensor


def sample_positions(posteriors: Tensor, samples: int, generator: torch.Generator | None = None) -> Tensor:
    """``samples`` positions per patch drawn from q (spec §5), B×samples flat indices into L·H·W."""
    layers, batch, height, width = posteriors.shape
    if bool((posteriors < 0).any()):
        raise ValueError("posteriors must be non-negative")
    return inverse_cdf_samples(posteriors.transpose(0, 1).reshape(batch, layers * height, width), samples, generator)


def sample_positions_from_log_joint(
    log_joint_values: Tensor,
    samples: int,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
    overwrite_input: bool = False,
) -> Tensor:
    """As ``sample_positions(posterior(log_joint_values, temperature), …)`` without forming q: the
    draws only need q up to its normaliser, exp((E − max E)/T) (B×samples flat indices), which is
    computed in the input's own memory when ``overwrite_input``.

    The tempered energies are clamped at −87 before ``exp`` (a weight of e⁻⁸⁷ ≈ 1.6·10⁻³⁸ instead
    of a smaller one, at most P·1.6·10⁻³⁸ of the mass in all): ``exp`` of float32 values far below
    that returns denormals, which are slow on CPU.
    """
    layers, batch, height, width = log_joint_values.shape
    energies = log_joint_values.transpose(0, 1)  # B×L×H×W, any strides (the FFT paths return views)
    peak = energies.amax(dim=(1, 2, 3), keepdim=True)
    weights = torch.add(
        -peak / temperature, energies, alpha=1.0 / temperature, out=energies if overwrite_input else None
    )
    weights = weights.clamp_min_(-87.0).exp_()
    return inverse_cdf_samples(weights.reshape(batch, layers * height, width), samples, generator)


SAMPLING_CHUNK = 1 << 22  # gathered weights per pass of the in-row draw


def inverse_cdf_samples(weights: Tensor, samples: int, generator: torch.Generator | None) -> Tensor:
    """Categorical draws from unnormalised non-negative ``weights`` (B×R×C, any strides; the caller
    guarantees the sign), B×samples flat indices r·C + c.

    Two-level inverse-CDF sampling, exact in distribution: a row r is drawn with probability ∝ its
    sum, then a column inside it ∝ its weight, each by locating a uniform draw in cumulative sums.
    Only the row sums (one vectorised reduction, no copy of a strided input) and the drawn rows'
    cumulative sums (float64, so no position's interval is lost to the rounding of a long running
    sum) are formed, far less work than ``torch.multinomial`` over every position.
    """
    batch, rows, cols = weights.shape
    if batch == 0 or samples == 0:
        return torch.zeros(batch, samples, dtype=torch.long, device=weights.device)
    sums = weights.sum(-1).double()  # B×R row masses
    totals = sums.sum(1)
    if not bool(torch.isfinite(totals).all() and (totals > 0).all()):
        raise ValueError(
            "position weights must be finite and not all zero for every patch "
            "(a NaN or infinite log joint, e.g. from a NaN pixel in the patch?)"
        )
    device = generator.device if generator is not None else weights.device
    uniform = torch.rand(2, batch, samples, generator=generator, dtype=torch.float64, device=device).to(weights.device)
    row_cdf = sums.cumsum(1)
    # the first row whose cumulative sum exceeds u; capped at the last row with any mass, which
    # only matters if u·total rounds up to the total
    last = torch.where(sums > 0, torch.arange(rows, device=sums.device), 0).amax(1, keepdim=True)
    chosen = torch.minimum(torch.searchsorted(row_cdf, uniform[0] * row_cdf[:, -1:], right=True), last)
    step = max(1, SAMPLING_CHUNK // (batch * cols))  # draws per pass: bounds the B×draws×C gather
    within = torch.cat([
        _draw_inside_rows(weights, chosen[:, i : i + step], uniform[1, :, i : i + step])
        for i in range(0, samples, step)
    ], dim=1)
    return chosen * cols + within


def _draw_inside_rows(weights: Tensor, chosen: Tensor, uniform: Tensor) -> Tensor:
    """Column inside each drawn row (``chosen``: B×draws row indices), ∝ weight, from U(0, 1) draws."""
    values = weights[torch.arange(weights.shape[0], device=weights.device)[:, None], chosen]  # B×draws×C
    cdf = values.cumsum(-1, dtype=torch.float64)
    within = torch.searchsorted(cdf, (uniform * cdf[..., -1])[..., None], right=True)[..., 0]
    return torch.minimum(within, (values > 0).cumsum(-1).argmax(-1))  # same guard as for the row


def window_indices(flat_positions: Tensor, shape: tuple[int, int, int], size: int) -> Tensor:
    """Flat L·H·W indices of the w×w window centred on each position (wrapping), (...)×w×w."""
    layers, height, width = shape
    half = size // 2
    layer = flat_positions // (height * width)
    row = flat_positions // width % height
    col = flat_positions % width
    offsets = torch.arange(size, device=flat_positions.device) - half
    rows = (row[..., None] + offsets) % height
    cols = (col[..., None] + offsets) % width
    return (layer[..., None, None] * height + rows[..., :, None]) * width + cols[..., None, :]
