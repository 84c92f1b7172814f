"""Label embedding into the epitome and reconstruction of high-res labels (spec §5).

Posteriors follow the model's convention q[l, b, u, v] (L×B×H×W, each patch summing to 1 over
(l, u, v)); label counts are K×L×H×W, K classes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from eolabels.epitome.model import GaussianEpitome, Method, chunk_size, log_joint, resolve_method
from eolabels.epitome.patches import covering_origins, crop


def one_hot_labels(labels: Tensor, num_classes: int, ignore_index: int | None = 255) -> Tensor:
    """B×w×w class ids → B×K×w×w one-hot floats; ``ignore_index`` pixels are all-zero."""
    valid = labels != ignore_index if ignore_index is not None else torch.ones_like(labels, dtype=torch.bool)
    safe = torch.where(valid, labels, torch.zeros_like(labels)).long()
    encoded = F.one_hot(safe, num_classes).movedim(-1, 1).float()
    return encoded * valid.unsqueeze(1)


def embed_labels_exact(posteriors: Tensor, labels: Tensor) -> Tensor:
    """Σ_b q_b ⊛ y_b on the torus (spec §5, exact form), K×L×H×W.

    N[ℓ, l, m, n] = Σ_b Σ_{u,v} q_b(l, u, v) · y_b[ℓ, m − u + p, n − v + p], over the windows
    that cover (m, n).
    """
    size = labels.shape[-1]
    half = size // 2
    padded = F.pad(posteriors, (half, half, half, half), mode="circular") if half else posteriors
    counts = F.conv2d(padded, labels.to(posteriors.dtype).flip(-2, -1).transpose(0, 1))
    return counts.transpose(0, 1)


def sample_positions(posteriors: Tensor, samples: int, generator: torch.Generator | None = None) -> Tensor:
    """``samples`` positions per patch drawn from q (spec §5), B×samples flat indices into L·H·W."""
    layers, batch, height, width = posteriors.shape
    if bool((posteriors < 0).any()):
        raise ValueError("posteriors must be non-negative")
    return _inverse_cdf_samples(posteriors.transpose(0, 1).reshape(batch, layers * height, width), samples, generator)


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
    that returns denormals and ran 4× slower on the bench CPU.
    """
    layers, batch, height, width = log_joint_values.shape
    energies = log_joint_values.transpose(0, 1)  # B×L×H×W, any strides (the FFT paths return views)
    peak = energies.amax(dim=(1, 2, 3), keepdim=True)
    weights = torch.add(
        -peak / temperature, energies, alpha=1.0 / temperature, out=energies if overwrite_input else None
    )
    weights = weights.clamp_min_(-87.0).exp_()
    return _inverse_cdf_samples(weights.reshape(batch, layers * height, width), samples, generator)


SAMPLING_CHUNK = 1 << 22  # gathered weights per pass of the in-row draw


def _inverse_cdf_samples(weights: Tensor, samples: int, generator: torch.Generator | None) -> Tensor:
    """Categorical draws from unnormalised non-negative ``weights`` (B×R×C, any strides; the caller
    guarantees the sign), B×samples flat indices r·C + c.

    Two-level inverse-CDF sampling, exact in distribution: a row r is drawn with probability ∝ its
    sum, then a column inside it ∝ its weight, each by locating a uniform draw in cumulative sums.
    Only the row sums (one vectorised reduction, no copy of a strided input) and the drawn rows'
    cumulative sums (float64, so no position's interval is lost to the rounding of a long running
    sum) are formed: ~20× faster than ``torch.multinomial`` on CPU for 299² positions.
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


def embed_labels_sampled(
    posteriors: Tensor, labels: Tensor, samples: int = 16, generator: torch.Generator | None = None
) -> Tensor:
    """Sampled embedding (spec §5, K=16): add each label patch into the window around s_k ~ q."""
    layers, batch, height, width = posteriors.shape
    classes, size = labels.shape[1], labels.shape[-1]
    positions = sample_positions(posteriors, samples, generator)
    index = window_indices(positions, (layers, height, width), size)  # B×S×w×w
    values = labels.to(posteriors.dtype).unsqueeze(1).expand(batch, samples, classes, size, size)
    counts = posteriors.new_zeros(classes, layers * height * width)
    counts.index_add_(1, index.flatten(), values.movedim(2, 0).reshape(classes, -1))
    return counts.view(classes, layers, height, width)


def embed_coarse_labels(posteriors: Tensor, centre_classes: Tensor, num_classes: int) -> Tensor:
    """lrmap[c] += q_b for every patch whose centre pixel has coarse class c (spec §5), K×L×H×W."""
    lrmap = posteriors.new_zeros(num_classes, *posteriors.shape[:1], *posteriors.shape[2:])
    lrmap.index_add_(0, centre_classes.long(), posteriors.transpose(0, 1))
    return lrmap


def accumulate_coarse_posteriors(
    log_joint_values: Tensor,
    centre_classes: Tensor,
    lrmap: Tensor,
    temperature: float = 1.0,
    overwrite_input: bool = False,
    peak: float | None = None,
) -> Tensor:
    """``lrmap += embed_coarse_labels(posterior(log_joint_values, temperature), centre_classes, K)``
    in place (``lrmap``: K×L×H×W, any float dtype; fastest in the log joint's), fused; returns it.

    ``peak``: a known maximum of every patch's log joint, up to rounding (e.g. 0 for log joints
    already tempered and shifted by :attr:`EpitomeFields.log_joint_bound` when each patch is cut from
    a self-epitome): no search for it, and with T = 1 and peak 0 no pass before the exp.

    Same value (float32 rounding aside): q_b = softmax over (l, u, v) of E_b/T is formed in the log
    joint's own memory layout (no copy to L·H·W-contiguous rows, none to float64; in the input's
    memory when ``overwrite_input``) and scaled by the per-patch normalisers 1/Σ_s exp(·) inside the
    class sums Σ_{b: c_b = c} q_b.  With patches in rows on CPU and at most K runs of equal classes
    (callers that group a batch by class), those are one matrix-vector product per run: a 64×512²
    batch took 3.7 ms against 15 ms for the K×B one-hot product, whose flops are mostly zeros.
    Otherwise they are one product with the B×K scaled one-hot class matrix.
    """
    layers, batch, height, width = log_joint_values.shape
    num_classes = lrmap.shape[0]
    classes = centre_classes.long().to(log_joint_values.device)  # checked before the input is overwritten
    if classes.numel() and (int(classes.min()) < 0 or int(classes.max()) >= num_classes):
        raise ValueError(f"centre classes must lie in 0..{num_classes - 1} (the lrmap's classes)")
    positions_major = log_joint_values.stride(1) == 1 and batch > 1  # e.g. channels-last output
    if positions_major:
        energies = log_joint_values.permute(0, 2, 3, 1).reshape(-1, batch)  # (L·H·W)×B
        reduce_dim = 0
    else:
        energies = log_joint_values.transpose(0, 1).reshape(batch, -1)  # B×(L·H·W)
        reduce_dim = 1
    in_place = overwrite_input or energies.data_ptr() != log_joint_values.data_ptr()  # or a copy
    if peak == 0.0 and temperature == 1.0:
        weights = energies if in_place else energies.clone()
    else:
        peaks = torch.full((1, 1), peak) if peak is not None else energies.amax(dim=reduce_dim, keepdim=True)
        # (E − peak)/T as E/T + (−peak/T) in one pass: q_b up to its normaliser after the exp
        shift = (-peaks / temperature).to(energies)
        weights = torch.add(shift, energies, alpha=1.0 / temperature, out=energies if in_place else None)
    weights.exp_()
    normaliser = weights.sum(dim=reduce_dim).double()  # B
    if peak is not None and not bool((normaliser > 0).all()):
        raise ValueError(f"peak {peak} lies far above a patch's log joint (every exp underflowed): pass peak=None")
    scale = 1.0 / normaliser
    runs = None if positions_major or weights.device.type != "cpu" else torch.unique_consecutive(
        classes, return_counts=True
    )
    if runs is not None and len(runs[0]) <= num_classes:
        target, scale, start = lrmap.view(num_classes, -1), scale.to(weights.dtype), 0
        for label, count in zip(runs[0].tolist(), runs[1].tolist()):
            _add_product(target[label], weights[start : start + count].T, scale[start : start + count])
            start += count
        return lrmap
    scaled_classes = (F.one_hot(classes, num_classes).double() * scale[:, None]).to(weights.dtype)  # B×K
    # the class sums written in the layout of the weights (no transposed pass)
    if positions_major:
        _add_product(lrmap.view(num_classes, -1).T, weights, scaled_classes)  # (L·H·W)×K
    else:
        _add_product(lrmap.view(num_classes, -1), scaled_classes.T, weights)  # K×(L·H·W)
    return lrmap


def _add_product(target: Tensor, left: Tensor, right: Tensor) -> None:
    """``target += left @ right``, inside the product when the dtypes and layout allow it."""
    if target.dtype == left.dtype and target.is_contiguous():
        (target.addmv_ if right.dim() == 1 else target.addmm_)(left, right)
    else:
        target += left @ right


def label_distribution(counts: Tensor) -> Tensor:
    """p(ℓ | s) = N_ℓ / Σ_ℓ N_ℓ (spec §5); positions never hit get the uniform distribution."""
    total = counts.sum(0, keepdim=True)
    uniform = torch.full_like(counts, 1.0 / counts.shape[0])
    return torch.where(total > 0, counts / total.clamp_min(torch.finfo(counts.dtype).tiny), uniform)


def reconstruct_patch_labels(label_probs: Tensor, positions: Tensor, size: int) -> Tensor:
    """Σ over sampled positions of the aligned w×w window of p(ℓ|·) (spec §5), B×K×w×w."""
    classes, layers, height, width = label_probs.shape
    index = window_indices(positions, (layers, height, width), size)  # B×S×w×w
    windows = label_probs.reshape(classes, -1)[:, index]  # K×B×S×w×w
    return windows.sum(2).transpose(0, 1)


@torch.no_grad()
def reconstruct_tile(
    epitome: GaussianEpitome,
    image: Tensor,
    label_probs: Tensor,
    patch_size: int,
    stride: int | None = None,
    samples: int = 1,
    temperature: float | None = None,
    generator: torch.Generator | None = None,
    windows_per_batch: int = 256,
    method: Method = "auto",
) -> Tensor:
    """High-res label scores K×H×W for one C×H×W tile (spec §5).

    Sliding w×w windows (``stride`` defaults to w; the last window is flush with the border) cover
    every pixel; for each window ``samples`` positions are drawn from q(·|x) with temperature T
    (default (w/11)²) and the aligned p(ℓ|·) windows are summed into the tile.  Argmax over K gives
    the map.
    """
    stride = patch_size if stride is None else stride
    temperature = (patch_size / 11) ** 2 if temperature is None else temperature
    origins = covering_origins(image.shape[-2], image.shape[-1], patch_size, stride)
    fields = epitome.fields(patch_size)
    # batches no larger than one chunk of the log joint, which then needs no concatenation
    step = min(windows_per_batch, chunk_size(fields, method=resolve_method(fields, method)))
    scores = torch.zeros(label_probs.shape[0], *image.shape[-2:], dtype=label_probs.dtype)
    offsets = torch.arange(patch_size)
    for start in range(0, len(origins), step):
        part = origins[start : start + step]
        patches = crop([image], part).to(epitome.mean)
        energies = log_joint(fields, patches, method=method)
        positions = sample_positions_from_log_joint(energies, samples, temperature, generator, overwrite_input=True)
        positions = positions.to(label_probs.device)
        votes = reconstruct_patch_labels(label_probs, positions, patch_size).cpu()
        rows = (part.top[:, None] + offsets)[:, :, None].expand(-1, -1, patch_size)
        cols = (part.left[:, None] + offsets)[:, None, :].expand(-1, patch_size, -1)
        flat = (rows * image.shape[-1] + cols).flatten()
        scores.view(scores.shape[0], -1).index_add_(1, flat, votes.movedim(1, 0).reshape(scores.shape[0], -1))
    return scores
