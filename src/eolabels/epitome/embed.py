"""Label embedding into the epitome (spec §5): label counts per epitome position and p(ℓ | s).

Posteriors follow the model's convention q[l, b, u, v] (L×B×H×W, each patch summing to 1 over
(l, u, v)); label counts are K×L×H×W, K classes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from eolabels.epitome.sampling import sample_positions, window_indices


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
    (callers that group a batch by class), those are one matrix-vector product per run instead of
    the K×B one-hot product, whose flops are mostly zeros.
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
