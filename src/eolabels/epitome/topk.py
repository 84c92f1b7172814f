"""Approximate posteriors over epitome positions: the exact log joint at K candidates only.

The exact paths (:mod:`eolabels.epitome.model`) evaluate log p(x, s) at every position s; the
supplement (§3.3, §7) names approximate, coarse-to-fine mapping of patches to positions as the way
to faster inference.  Here the candidates of a patch come from a coarse-to-fine search:

1. coarse: the exact log joint on the subgrid of positions (l, a·f, b·f), f = ``coarse_stride``
   (a strided correlation, f² times cheaper than the full one);
2. fine: the ⌈K/f²⌉ best subgrid points, each expanded to the f×f block of positions it stands for
   (offsets −⌊f/2⌋ … f−1−⌊f/2⌋, so the blocks tile the torus), the exact log joint evaluated there
   (a gather of the epitome windows), and the K best kept.

q(s | x) is then normalised over the K candidates; positions outside get no mass.  What that drops
is measured, not assumed: :func:`dropped_mass` compares with the exact posterior on a sample of
patches (:class:`DroppedMass`, one per tile).  With K ≥ L·H·W every position is a candidate and
the posterior is the exact one.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from eolabels.epitome.fast_paths import constant_ivar_offset
from eolabels.epitome.fields import EpitomeFields
from eolabels.epitome.model import log_joint
from eolabels.epitome.terms import patch_kernels


# Patches per pass of the top-K path in LSR and embedding (several sampled batches joined): its many
# small operations then cost less per patch, above all with threads on a loaded CPU.
PATCHES_PER_PASS = 512


@dataclass(frozen=True)
class TopK:
    """The approximation: ``candidates`` K positions per patch found on a subgrid of stride
    ``coarse_stride``; ``check_patches`` patches per tile also get the exact posterior, to report
    the mass the approximation drops (0: no report).  K larger than the positions is clamped."""

    candidates: int = 256
    coarse_stride: int = 4
    check_patches: int = 64

    def __post_init__(self) -> None:
        if self.candidates < 1:
            raise ValueError(f"topk candidates must be >= 1, got {self.candidates}")
        if self.coarse_stride < 1:
            raise ValueError(f"topk coarse_stride must be >= 1, got {self.coarse_stride}")
        if self.check_patches < 0:
            raise ValueError(f"topk check_patches must be >= 0, got {self.check_patches}")


@dataclass(frozen=True)
class DroppedMass:
    """Exact posterior mass outside the candidates, over ``patches`` sampled patches of one tile."""

    patches: int
    mean: float
    median: float
    maximum: float

    @classmethod
    def of(cls, dropped: Tensor) -> "DroppedMass":
        values = dropped.double()
        return cls(len(values), float(values.mean()), float(values.median()), float(values.max()))

    def __str__(self) -> str:
        return (
            f"top-K posterior drops exact mass mean {self.mean:.4f}, median {self.median:.4f}, "
            f"max {self.maximum:.4f} (over {self.patches} patches)"
        )


def coarse_log_joint(fields: EpitomeFields, patches: Tensor, stride: int) -> Tensor:
    """The exact log p(x_b, s) at the subgrid positions s = (l, a·stride, b·stride), L×B×⌈H/f⌉×⌈W/f⌉."""
    fields.check_patches(patches)
    if fields.constant_ivar is not None:  # λ constant: correlate μλ alone (as the constant_ivar path)
        centred = fields.centred_patches(patches)
        correlation = F.conv2d(fields.padded_mean_weighted, centred, stride=stride)
        constant = fields.centred_constant[:, ::stride, ::stride].unsqueeze(1)
        return correlation.add_(constant_ivar_offset(fields, centred)).add_(constant)
    correlation = F.conv2d(fields.padded, patch_kernels(patches), stride=stride)
    return correlation.add_(fields.constant[:, ::stride, ::stride].unsqueeze(1))


def block_log_joint(fields: EpitomeFields, patches: Tensor, positions: Tensor, stride: int) -> Tensor:
    """The exact log p(x_b, s) on f×f blocks of positions, B×M×f×f for ``positions`` B×M×f×f
    (flat indices into L·H·W) whose blocks are contiguous on the torus, [0, 0] the top-left one.

    Each block needs only the (f + w − 1)² region of the field around it: the regions are gathered
    and correlated with their patch as one matrix product per patch."""
    fields.check_patches(patches)
    batch, blocks = positions.shape[:2]
    height, width, size = fields.height, fields.width, fields.patch_size
    corner = positions[:, :, 0, 0]
    layer, row, col = corner // (height * width), corner // width % height, corner % width
    offsets = torch.arange(stride + size - 1, device=positions.device) - fields.half
    rows = (row[..., None] + offsets) % height
    cols = (col[..., None] + offsets) % width
    index = (layer[..., None, None] * height + rows[..., :, None]) * width + cols[..., None, :]  # B×M×r×r
    if fields.constant_ivar is not None:  # λ constant: correlate μλ alone (as the constant_ivar path)
        centred = fields.centred_patches(patches)
        rows_of, kernels, constant = fields.mean_weighted_rows, centred, fields.centred_constant
        offset = constant_ivar_offset(fields, centred)[:, :, 0, 0].T.gather(1, layer)[..., None, None]  # B×M×1×1
    else:
        rows_of, kernels, constant, offset = fields.weighted_rows, patch_kernels(patches), fields.constant, None
    side = stride + size - 1
    # regions B×(r·r·K)×M from the positions-major field rows (gathered block by block: each region's
    # rows lie close together in the field)
    regions = _gather_rows(rows_of, index.flatten()).view(batch, blocks, -1).transpose(1, 2)
    # the patch kernel shifted to each of the f×f offsets inside an r×r frame: one product per patch
    # gives the f×f outputs of all its blocks (small grouped convolutions are far slower)
    channels = kernels.shape[1]
    frame = _shifted_frame_index(stride, size, channels, str(kernels.device))  # f²×(w·w·K)
    pixels_last = kernels.permute(0, 2, 3, 1).reshape(batch, 1, -1).expand(-1, stride * stride, -1)
    shifted = kernels.new_zeros(batch, stride * stride, side * side * channels)
    shifted.scatter_(2, frame.expand(batch, -1, -1), pixels_last)
    values = torch.bmm(shifted, regions)  # B×f²×M
    values = values.transpose(1, 2).reshape(batch, blocks, stride, stride)
    values = values + constant.flatten()[positions]
    return values if offset is None else values + offset


def candidates(fields: EpitomeFields, patches: Tensor, topk: TopK) -> tuple[Tensor, Tensor]:
    """The K candidate positions of every patch and their exact log joint, (B×K, B×K), best first.

    K is clamped to the number of positions L·H·W (then every position is a candidate)."""
    layers, height, width, stride = fields.layers, fields.height, fields.width, topk.coarse_stride
    total = layers * height * width
    keep = min(topk.candidates, total)
    coarse = coarse_log_joint(fields, patches, stride)  # L×B×Hc×Wc
    coarse_rows, coarse_cols = coarse.shape[-2:]
    flat = coarse.transpose(0, 1).reshape(len(patches), -1)  # B×(L·Hc·Wc), often positions-major
    # every subgrid point when K covers all positions (blocks that wrap overlap: fewer than K/f² would miss some)
    count = flat.shape[1] if keep == total else min(math.ceil(keep / stride**2), flat.shape[1])
    cells = _row_topk_indices(flat, count)  # B×cells
    layer = cells // (coarse_rows * coarse_cols)
    row = cells // coarse_cols % coarse_rows * stride
    col = cells % coarse_cols * stride
    offsets = torch.arange(stride, device=cells.device) - stride // 2
    rows = (row[..., None, None] + offsets[:, None]) % height  # B×cells×f×1
    cols = (col[..., None, None] + offsets[None, :]) % width  # B×cells×1×f
    positions = (layer[..., None, None] * height + rows) * width + cols  # B×cells×f×f
    values = block_log_joint(fields, patches, positions, stride)
    if height % stride or width % stride:  # blocks of the last subgrid row/column wrap onto the first:
        # there they keep only the rows/columns the first block does not own, the rest count once
        last_rows = offsets[:, None] >= height - (coarse_rows - 1) * stride - stride // 2
        last_cols = offsets[None, :] >= width - (coarse_cols - 1) * stride - stride // 2
        repeat = ((row[..., None, None] == (coarse_rows - 1) * stride) & last_rows) | (
            (col[..., None, None] == (coarse_cols - 1) * stride) & last_cols
        )
        values = values.masked_fill(repeat, float("-inf"))
    values, positions = values.flatten(1), positions.flatten(1)
    best = values.topk(min(keep, positions.shape[1]), dim=1)
    return positions.gather(1, best.indices), best.values


@functools.lru_cache(maxsize=16)
def _shifted_frame_index(stride: int, size: int, channels: int, device: str) -> Tensor:
    """Where kernel entry (i, j, k) lands in the r×r×K frame (r = f + w − 1) when shifted by (u, v):
    row u·f + v holds the flat frame indices ((u + i)·r + v + j)·K + k, f²×(w·w·K)."""
    side = stride + size - 1
    shift = torch.arange(stride, device=device)
    tap = torch.arange(size, device=device)
    rows = (shift[:, None, None, None] + tap[None, None, :, None]) * side  # u, ·, i, ·
    cols = shift[None, :, None, None] + tap[None, None, None, :]  # ·, v, ·, j
    pixel = (rows + cols)[..., None] * channels + torch.arange(channels, device=device)  # f×f×w×w×K
    return pixel.reshape(stride * stride, -1)


def _gather_rows(rows: Tensor, index: Tensor) -> Tensor:
    """``rows[index]`` for a contiguous N×K field; rows of 16 bytes or a multiple are moved as
    complex128 elements (a faster gather than one of K floats)."""
    row_bytes = rows.shape[1] * rows.element_size()
    if row_bytes % 16 or not rows.is_contiguous():
        return rows.index_select(0, index)
    wide = rows.view(torch.complex128)  # N×(row_bytes/16)
    return wide.index_select(0, index).view(rows.dtype)


TOPK_GROUP = 64  # row elements per group of the two-stage top-k


def _row_topk_indices(values: Tensor, count: int) -> Tensor:
    """Indices of the ``count`` largest entries of every row (any order), B×count.

    ``Tensor.topk`` on CPU is slow on long rows; in two stages it touches each entry once: the maxima
    of ``TOPK_GROUP``-entry groups (strided: entries g, g + G, g + 2G, … of a row, so the maxima are
    an elementwise reduction over the positions-major L×B layout the constant-λ convolution gives),
    the ``count`` best groups (which hold the ``count`` best entries, ties aside), then the best
    entries of those groups only."""
    batch, length = values.shape
    if count * TOPK_GROUP >= length:
        return values.topk(count, dim=1, sorted=False).indices
    groups = -(-length // TOPK_GROUP)
    columns = F.pad(values.T, (0, 0, 0, groups * TOPK_GROUP - length), value=float("-inf"))
    columns = columns.view(TOPK_GROUP, groups, batch)
    best_groups = columns.amax(0).T.topk(count, dim=1, sorted=False).indices  # B×count
    members = columns[:, best_groups, torch.arange(batch, device=values.device)[:, None]]  # G×B×count
    within = members.permute(1, 0, 2).reshape(batch, -1).topk(count, dim=1, sorted=False).indices
    return best_groups.gather(1, within % count) + groups * (within // count)


def _without_duplicates(positions: Tensor, values: Tensor) -> Tensor:
    """``values`` with every repeat of a position in its row set to −inf (counted once)."""
    ordered, order = positions.sort(dim=1)
    repeat = torch.zeros_like(ordered, dtype=torch.bool)
    repeat[:, 1:] = ordered[:, 1:] == ordered[:, :-1]
    mask = torch.zeros_like(repeat).scatter_(1, order, repeat)
    return values.masked_fill(mask, float("-inf"))


def topk_posterior(
    fields: EpitomeFields, patches: Tensor, topk: TopK, temperature: float = 1.0
) -> tuple[Tensor, Tensor]:
    """(positions, q): B×K candidate positions and q(s | x_b) ∝ exp(log p(x_b, s)/T) normalised
    over them (float64, each row sums to 1)."""
    positions, values = candidates(fields, patches, topk)
    return positions, torch.softmax(values.double() / temperature, dim=1)


def dropped_mass(fields: EpitomeFields, patches: Tensor, positions: Tensor, temperature: float = 1.0) -> Tensor:
    """1 − Σ_{s ∈ candidates} q_exact(s | x_b): the exact posterior mass the candidates miss, length B
    (float64).  A position listed twice in a row counts once."""
    method = "constant_ivar" if fields.constant_ivar is not None else "auto"  # no FFT fields for a sample
    exact = log_joint(fields, patches, method=method).transpose(0, 1).reshape(len(patches), -1) / temperature
    kept = _without_duplicates(positions, exact.gather(1, positions.to(exact.device))).double()
    return (1.0 - torch.exp(kept.logsumexp(1) - exact.logsumexp(1).double())).clamp_min(0.0)


def add_to_lrmap(lrmap: Tensor, centre_classes: Tensor, positions: Tensor, q: Tensor) -> None:
    """lrmap[c_b, s] += q(s | x_b) at every candidate s of every patch b (lrmap: K×L×H×W float64),
    the top-K form of :func:`eolabels.epitome.embed.embed_coarse_labels`."""
    per_class = lrmap[0].numel()
    index = centre_classes.long().to(positions.device)[:, None] * per_class + positions
    lrmap.view(-1).index_add_(0, index.flatten().cpu(), q.flatten().to(lrmap).cpu())


class DroppedMassCheck:
    """Collects :func:`dropped_mass` of up to ``patches`` patches, spread over each batch (batches
    may be sorted by class), from the first batches of a tile."""

    def __init__(self, patches: int) -> None:
        self.remaining = patches
        self.values: list[Tensor] = []

    def add(self, fields: EpitomeFields, patches: Tensor, positions: Tensor, temperature: float) -> None:
        if self.remaining <= 0 or not len(patches):
            return
        picked = torch.arange(0, len(patches), max(1, len(patches) // self.remaining))[: self.remaining]
        self.values.append(dropped_mass(fields, patches[picked], positions[picked.to(positions.device)], temperature))
        self.remaining -= len(picked)

    def report(self) -> DroppedMass | None:
        return DroppedMass.of(torch.cat(self.values).cpu()) if self.values else None
