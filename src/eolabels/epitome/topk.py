"""Approximate posteriors over epitome positions: the exact log joint at candidates, a coarse tail elsewhere.

The exact paths (:mod:`eolabels.epitome.model`) evaluate log p(x, s) at every position s; the
supplement (§3.3, §7) names approximate, coarse-to-fine mapping of patches to positions as the way
to faster inference.  Here the candidates of a patch come from a coarse-to-fine search:

1. coarse: the exact log joint on the subgrid of positions (l, a·f, b·f), f = ``coarse_stride``
   (one matrix product with the field's subgrid windows, f² times cheaper than the full correlation);
2. fine: the ⌈K/f²⌉ best subgrid points, each expanded to the f×f block of positions it stands for
   (offsets −⌊f/2⌋ … f−1−⌊f/2⌋, so the blocks tile the torus), the exact log joint evaluated there
   (a gather of the epitome windows).

Plain top-K (``tail=False``) keeps the K best and normalises q(s | x) over them; positions outside
get no mass.  Where the posterior is not peaky (self-epitomic LSR at T = w² puts most of the exact
mass outside any few hundred positions) that is a different estimator, not an approximation.  With
the tail (the default) the posterior is approximated, not truncated: every position of the refined
blocks keeps its exact weight, and every other block a stands as n_a positions of its subgrid
point's weight exp(log p(x, s_a)/T), all normalised together; a block's mass is spread evenly over
its positions (in lrmap sums, in draws).  What either drops is measured, not assumed: the check
(:class:`DroppedMassCheck`, one :class:`DroppedMass` per tile) compares with the exact posterior on
a sample of patches: the exact mass outside the candidates and, with the tail, the total variation
between the approximate and the exact posterior over positions (which bounds the error of any
expected label distribution).  With K ≥ L·H·W every position is a candidate and either posterior
is the exact one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from eolabels.epitome.fast_paths import constant_ivar_offset
from eolabels.epitome.fields import EpitomeFields
from eolabels.epitome.model import log_joint
from eolabels.epitome.sampling import inverse_cdf_samples
from eolabels.epitome.terms import patch_kernels


# Patches per pass of the top-K path in LSR and embedding (several sampled batches joined): its many
# small operations then cost less per patch, above all with threads on a loaded CPU.
PATCHES_PER_PASS = 1024

# Tail log weights are floored here before the exp: e^-80 ≈ 2e-35 is nil beside the best weight (1),
# and far smaller inputs leave the CPU's vectorised exp for a slow path.
EXP_FLOOR = -80.0


@dataclass(frozen=True)
class TopK:
    """The approximation: ``candidates`` K positions per patch found on a subgrid of stride
    ``coarse_stride``, and with ``tail`` the subgrid's other blocks standing for their positions;
    ``check_patches`` patches per tile also get the exact posterior, to report what the
    approximation drops (0: no report).  K larger than the positions is clamped."""

    candidates: int = 256
    coarse_stride: int = 4
    check_patches: int = 64
    tail: bool = True

    def __post_init__(self) -> None:
        if self.candidates < 1:
            raise ValueError(f"topk candidates must be >= 1, got {self.candidates}")
        if self.coarse_stride < 1:
            raise ValueError(f"topk coarse_stride must be >= 1, got {self.coarse_stride}")
        if self.check_patches < 0:
            raise ValueError(f"topk check_patches must be >= 0, got {self.check_patches}")


@dataclass(frozen=True)
class DroppedMass:
    """Exact posterior mass outside the candidates, over ``patches`` sampled patches of one tile;
    with a tail also the total variation ½ Σ_s |q_exact(s) − q_approx(s)| of the approximation."""

    patches: int
    mean: float
    median: float
    maximum: float
    variation_mean: float | None = None
    variation_maximum: float | None = None

    @classmethod
    def of(cls, dropped: Tensor, variation: Tensor | None = None) -> "DroppedMass":
        values = dropped.double()
        spread = () if variation is None else (float(variation.double().mean()), float(variation.double().max()))
        return cls(len(values), float(values.mean()), float(values.median()), float(values.max()), *spread)

    def __str__(self) -> str:
        text = (
            f"top-K posterior drops exact mass mean {self.mean:.4f}, median {self.median:.4f}, "
            f"max {self.maximum:.4f} (over {self.patches} patches)"
        )
        if self.variation_mean is None:
            return text
        return (
            f"{text}; with the tail the approximate posterior is within total variation mean "
            f"{self.variation_mean:.4f}, max {self.variation_maximum:.4f} of the exact one"
        )


def coarse_log_joint(fields: EpitomeFields, patches: Tensor, stride: int) -> Tensor:
    """The exact log p(x_b, s) at the subgrid positions s = (l, a·stride, b·stride), L×B×⌈H/f⌉×⌈W/f⌉
    (a view of :func:`coarse_rows`)."""
    flat = coarse_rows(fields, patches, stride)
    grid_rows, grid_cols = -(-fields.height // stride), -(-fields.width // stride)
    return flat.view(len(patches), fields.layers, grid_rows, grid_cols).transpose(0, 1)


def coarse_rows(fields: EpitomeFields, patches: Tensor, stride: int, scale: float = 1.0, shift: float = 0.0) -> Tensor:
    """``scale`` · log p(x_b, s) + ``shift`` (exact) at the subgrid positions, B×(L·Hc·Wc) (rows
    contiguous): per layer one product of the patches' kernels [x | 1 | offset] with the field's
    subgrid windows, constants and ones (:meth:`EpitomeFields.subgrid_columns`), so no pass adds
    the constants, the scale or the shift afterwards."""
    fields.check_patches(patches)
    columns = fields.subgrid_columns(stride).to(patches.dtype)  # L×(D+2)×cells
    if fields.constant_ivar is not None:  # λ constant: correlate μλ alone (as the constant_ivar path)
        centred = fields.centred_patches(patches)
        kernels, offset = centred.flatten(1), constant_ivar_offset(fields, centred)[:, :, 0, 0]  # B×D, L×B
    else:
        kernels, offset = patch_kernels(patches).flatten(1), patches.new_zeros(fields.layers, len(patches))
    ones = kernels.new_full((len(patches), 1), scale)
    kernels, offset = kernels * scale, offset * scale + shift
    products = [
        torch.cat([kernels, ones, offset[layer, :, None]], dim=1) @ columns[layer] for layer in range(fields.layers)
    ]
    return products[0] if fields.layers == 1 else torch.cat(products, dim=1)


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
    index = ((layer[..., None] * height + rows) * width)[..., :, None] + cols[..., None, :]  # B×M×r×r
    if fields.constant_ivar is not None:  # λ constant: correlate μλ alone (as the constant_ivar path)
        centred = fields.centred_patches(patches)
        rows_of, kernels, constant = fields.mean_weighted_rows, centred, fields.centred_constant
        offset = constant_ivar_offset(fields, centred)[:, :, 0, 0].T.gather(1, layer)[..., None, None]  # B×M×1×1
    else:
        rows_of, kernels, constant, offset = fields.weighted_rows, patch_kernels(patches), fields.constant, None
    # regions B×M×(r·r·K) from the positions-major field rows (gathered block by block: each region's
    # rows lie close together in the field)
    regions = _gather_rows(rows_of, index.flatten()).view(batch, blocks, -1)
    # the patch kernel shifted to each of the f×f offsets inside an r×r frame: one product per patch
    # gives the f×f outputs of all its blocks (small grouped convolutions are far slower)
    values = torch.bmm(regions, _shifted_frames(kernels, stride).transpose(1, 2))  # B×M×f², offsets reversed
    values = values.view(batch, blocks, stride, stride).flip(2, 3)  # B×M×f×f
    values = values + constant.flatten()[positions]
    return values if offset is None else values + offset


def _search(
    fields: EpitomeFields, patches: Tensor, topk: TopK, scale: float = 1.0, shift: float = 0.0
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The coarse-to-fine search: (positions, values, coarse, cells) with ``positions`` B×M×f×f the
    refined blocks (flat indices into L·H·W), ``values`` their exact log joint (−inf where a wrapping
    block repeats a position another block owns), ``coarse`` B×(L·Hc·Wc) the subgrid's log joint
    (times ``scale`` > 0, plus ``shift``: the order is the same) and ``cells`` B×M the refined
    subgrid points."""
    layers, height, width, stride = fields.layers, fields.height, fields.width, topk.coarse_stride
    total = layers * height * width
    keep = min(topk.candidates, total)
    flat = coarse_rows(fields, patches, stride, scale, shift)  # B×(L·Hc·Wc)
    grid_rows, grid_cols = -(-height // stride), -(-width // stride)
    # every subgrid point when K covers all positions (blocks that wrap overlap: fewer than K/f² would miss some)
    count = flat.shape[1] if keep == total else min(math.ceil(keep / stride**2), flat.shape[1])
    cells = _row_topk_indices(flat, count)  # B×cells
    layer = cells // (grid_rows * grid_cols)
    row = cells // grid_cols % grid_rows * stride
    col = cells % grid_cols * stride
    offsets = torch.arange(stride, device=cells.device) - stride // 2
    rows = (row[..., None, None] + offsets[:, None]) % height  # B×cells×f×1
    cols = (col[..., None, None] + offsets[None, :]) % width  # B×cells×1×f
    positions = (layer[..., None, None] * height + rows) * width + cols  # B×cells×f×f
    values = block_log_joint(fields, patches, positions, stride)
    if height % stride or width % stride:  # blocks of the last subgrid row/column wrap onto the first:
        # there they keep only the rows/columns the first block does not own, the rest count once
        last_rows = offsets[:, None] >= height - (grid_rows - 1) * stride - stride // 2
        last_cols = offsets[None, :] >= width - (grid_cols - 1) * stride - stride // 2
        repeat = ((row[..., None, None] == (grid_rows - 1) * stride) & last_rows) | (
            (col[..., None, None] == (grid_cols - 1) * stride) & last_cols
        )
        values = values.masked_fill(repeat, float("-inf"))
    return positions, values, flat, cells


def candidates(fields: EpitomeFields, patches: Tensor, topk: TopK) -> tuple[Tensor, Tensor]:
    """The K candidate positions of every patch and their exact log joint, (B×K, B×K), best first.

    K is clamped to the number of positions L·H·W (then every position is a candidate)."""
    keep = min(topk.candidates, fields.layers * fields.height * fields.width)
    positions, values, _, _ = _search(fields, patches, topk)
    values, positions = values.flatten(1), positions.flatten(1)
    best = values.topk(min(keep, positions.shape[1]), dim=1)
    return positions.gather(1, best.indices), best.values


def block_owners(size: int, stride: int) -> tuple[Tensor, Tensor]:
    """(owner, count): the subgrid point whose block holds each of ``size`` rows (or columns) of the
    torus, and how many rows each block owns.  Block a holds rows a·f − ⌊f/2⌋ … a·f + f − 1 − ⌊f/2⌋
    (mod size); when f does not divide the size, the last block keeps only the rows block 0 does
    not own (as :func:`candidates` counts them)."""
    owner = (torch.arange(size) + stride // 2) % size // stride
    return owner, torch.bincount(owner, minlength=-(-size // stride))


@dataclass(frozen=True)
class Posterior:
    """An approximate posterior over the L×H×W positions of a batch of B patches.

    ``q`` (B×M, float64) is the mass at the candidate ``positions`` (B×M flat indices; a position
    repeated in a row carries 0).  With a tail, ``tail`` × ``tail_scale`` (B×(L·Hc·Wc) float32 weights
    times B float64 normalisers, or both None for plain top-K) is the mass of each subgrid point's
    block that was not refined, spread evenly over the positions the block owns (:func:`block_owners`);
    candidates and tail sum to 1 per patch.  The tail stays unnormalised: its one use per pass, the
    class sums of :class:`PosteriorSums`, takes the normalisers into a matrix product for free."""

    positions: Tensor
    q: Tensor
    tail: Tensor | None
    tail_scale: Tensor | None
    shape: tuple[int, int, int]  # L, H, W
    stride: int

    def __getitem__(self, rows: Tensor) -> "Posterior":
        tail = None if self.tail is None else self.tail[rows]
        scale = None if self.tail_scale is None else self.tail_scale[rows]
        return Posterior(self.positions[rows], self.q[rows], tail, scale, self.shape, self.stride)

    def tail_mass(self, dtype: torch.dtype = torch.float64) -> Tensor:
        """The normalised tail, B×(L·Hc·Wc) (no columns for plain top-K)."""
        if self.tail is None or self.tail_scale is None:
            return self.q.new_zeros(len(self.q), 0, dtype=dtype)
        return self.tail.to(dtype) * self.tail_scale[:, None].to(dtype)

    def spread(self, blocks: Tensor) -> Tensor:
        """Block masses …×(L·Hc·Wc) spread evenly over the positions each block owns, …×(L·H·W)."""
        layers, height, width = self.shape
        row_owner, row_count = block_owners(height, self.stride)
        col_owner, col_count = block_owners(width, self.stride)
        device, lead, stride = blocks.device, blocks.shape[:-1], self.stride
        per_block = blocks.reshape(*lead, layers, len(row_count), len(col_count))
        if height % stride == 0 and width % stride == 0:  # blocks of f×f: repeat, then roll into place
            share = (per_block / stride**2)[..., :, None, :, None].expand(*per_block.shape[:-1], stride, -1, stride)
            dense = share.reshape(*lead, layers, height, width).roll((-(stride // 2), -(stride // 2)), (-2, -1))
        else:
            share = per_block / (row_count[:, None] * col_count[None, :]).to(device, blocks.dtype)
            dense = share.index_select(-2, row_owner.to(device)).index_select(-1, col_owner.to(device))
        return dense.reshape(*lead, layers * height * width)

    def dense(self, dtype: torch.dtype = torch.float64) -> Tensor:
        """The approximate posterior at every position, B×(L·H·W)."""
        layers, height, width = self.shape
        if self.tail is None:
            result = torch.zeros(len(self.q), layers * height * width, dtype=dtype, device=self.q.device)
        else:
            result = self.spread(self.tail_mass(dtype))
        return result.scatter_add_(1, self.positions, self.q.to(dtype))

    def sample(self, samples: int, generator: torch.Generator | None) -> Tensor:
        """Draws of positions, B×samples flat indices: a candidate by its mass, or a tail block by
        its mass and then one of the positions it owns uniformly."""
        weights = torch.cat([self.q, self.tail_mass()], dim=1)
        drawn = inverse_cdf_samples(weights[:, None, :], samples, generator)
        count = self.positions.shape[1]
        from_candidates = self.positions.gather(1, drawn.clamp_max(count - 1))
        if self.tail is None:
            return from_candidates
        layers, height, width = self.shape
        row_count, col_count = (block_owners(side, self.stride)[1].to(drawn.device) for side in (height, width))
        cell = (drawn - count).clamp_min(0)
        layer = cell // (len(row_count) * len(col_count))
        block_row, block_col = cell // len(col_count) % len(row_count), cell % len(col_count)
        device = generator.device if generator is not None else drawn.device
        uniform = torch.rand(2, *drawn.shape, generator=generator, dtype=torch.float64, device=device).to(drawn.device)
        row = (block_row * self.stride - self.stride // 2 + (uniform[0] * row_count[block_row]).long()) % height
        col = (block_col * self.stride - self.stride // 2 + (uniform[1] * col_count[block_col]).long()) % width
        return torch.where(drawn < count, from_candidates, (layer * height + row) * width + col)


def approximate_posterior(
    fields: EpitomeFields, patches: Tensor, topk: TopK, temperature: float = 1.0, peak: float | None = None
) -> Posterior:
    """The posterior ``topk`` asks for: top-K (normalised over the K candidates) or, with
    ``topk.tail``, the exact q(s | x) ∝ exp(log p(x, s)/T) at every position of the refined blocks
    and, for every other block a, its subgrid point s_a standing for each of the n_a positions it
    owns: weight n_a · exp(log p(x, s_a)/T), all normalised together.

    ``peak``: the largest log p(x, s) of every patch where it is known (self-epitomic LSR: the
    fields' bound, which a patch cut from the tile attains at its own position); the tail's
    tempering and shift then ride on the coarse product instead of a pass of their own."""
    shape, stride = (fields.layers, fields.height, fields.width), topk.coarse_stride
    if not topk.tail:
        positions, q = topk_posterior(fields, patches, topk, temperature)
        return Posterior(positions, q, None, None, shape, stride)
    row_count = block_owners(fields.height, stride)[1]
    col_count = block_owners(fields.width, stride)[1]
    sizes = (row_count[:, None] * col_count[None, :]).flatten()
    uniform = bool((sizes == sizes[0]).all())  # f divides both sides: every block owns f² positions
    log_size = math.log(float(sizes[0])) if uniform else 0.0  # folded into the shift when uniform
    if peak is None:
        positions, values, coarse, cells = _search(fields, patches, topk)
        values = values.flatten(1)
        # each refined block holds its subgrid point, and the refined points are the best: no tail
        # weight exceeds n_a times the best candidate's, so the candidates' maximum is a safe shift
        shift = values.amax(1, keepdim=True)
        # log weights (log p(x, s_a) − shift)/T + log n_a, formed in the tail's passes
        tail, tempering = coarse, (1.0 / temperature, shift / -temperature + log_size)
    else:
        tempered = (1.0 / temperature, log_size - peak / temperature)  # log weights straight from the product
        positions, values, tail, cells = _search(fields, patches, topk, *tempered)
        values, shift, tempering = values.flatten(1), values.new_full((len(patches), 1), peak), None
    exact = torch.exp((values.double() - shift.double()) / temperature)
    block_sizes = None if uniform else sizes.repeat(fields.layers).to(tail)
    tail_sums = _tail_weights_(tail, cells, tempering, block_sizes)
    scale = 1.0 / (exact.sum(1) + tail_sums)
    return Posterior(positions.flatten(1), exact * scale[:, None], tail, scale, shape, stride)


# Row chunks of the tail's elementwise passes hold about this many floats (1 MiB: the passes after the
# first then run in the core's cache instead of memory)
TAIL_CHUNK_FLOATS = 1 << 18


def _tail_weights_(
    logs: Tensor, cells: Tensor, tempering: tuple[float, Tensor] | None, block_sizes: Tensor | None
) -> Tensor:
    """In place, every row of the subgrid's ``logs`` (B×(L·Hc·Wc)) to its tail weights
    exp(max(a·logs + b, EXP_FLOOR)) for ``tempering`` (a, B×1 b) (None: the logs are tempered
    already), times ``block_sizes`` where blocks differ in size, 0 at the refined ``cells``; returns
    the rows' sums (float64)."""
    rows = max(1, TAIL_CHUNK_FLOATS // logs.shape[1])
    sums = torch.empty(len(logs), dtype=torch.float64, device=logs.device)
    for start in range(0, len(logs), rows):
        chunk, part = logs[start : start + rows], slice(start, start + rows)
        if tempering is not None:
            chunk.mul_(tempering[0]).add_(tempering[1][part])
        chunk.clamp_min_(EXP_FLOOR).exp_()
        if block_sizes is not None:
            chunk.mul_(block_sizes)
        chunk.scatter_(1, cells[part], 0.0)  # the refined blocks are in the exact part
        sums[part] = chunk.sum(1, dtype=torch.float64)
    return sums


def _shifted_frames(kernels: Tensor, stride: int) -> Tensor:
    """The K×w×w ``kernels`` at every offset (u, v) < f inside an r×r frame (r = f + w − 1), zeros
    elsewhere, pixels last: B×f²×(r·r·K), row a·f + b holding offset (f − 1 − a, f − 1 − b).  These
    are the r×r windows of the kernels zero-padded by f − 1 on every side, so one strided copy."""
    batch, channels, size = kernels.shape[0], kernels.shape[1], kernels.shape[-1]
    pad, side = stride - 1, stride + size - 1
    padded = F.pad(kernels, (pad, pad, pad, pad)).permute(0, 2, 3, 1).contiguous()  # B×P×P×K
    row = padded.shape[2] * channels
    windows = padded.as_strided(
        (batch, stride, stride, side, side, channels), (padded.shape[1] * row, row, channels, row, channels, 1)
    )
    return windows.reshape(batch, stride * stride, side * side * channels)


def _gather_rows(rows: Tensor, index: Tensor) -> Tensor:
    """``rows[index]`` for a contiguous N×K field; rows of 16 bytes or a multiple are moved as
    complex128 elements (a faster gather than one of K floats)."""
    row_bytes = rows.shape[1] * rows.element_size()
    if row_bytes % 16 or not rows.is_contiguous():
        return rows.index_select(0, index)
    wide = rows.view(torch.complex128)  # N×(row_bytes/16)
    return wide.index_select(0, index).view(rows.dtype)


TOPK_GROUP = 16  # row elements per group of the two-stage top-k


def _row_topk_indices(values: Tensor, count: int) -> Tensor:
    """Indices of the ``count`` largest entries of every row (any order), B×count.

    ``Tensor.topk`` on CPU is slow on long rows; in two stages it touches each entry once: the maxima
    of ``TOPK_GROUP``-entry groups, the ``count`` best groups (which hold the ``count`` best entries,
    ties aside), then the best entries of those groups only.  A row of n = G·m entries is read as G
    rows of m, group j holding entries j, j + m, …: the group maxima are then elementwise maxima of
    contiguous rows.  Rows must hold at least ``count`` entries above −inf (the padding's value)."""
    batch, length = values.shape
    if count * TOPK_GROUP >= length:
        return values.topk(count, dim=1, sorted=False).indices
    groups = -(-length // TOPK_GROUP)
    if groups * TOPK_GROUP != length:
        values = F.pad(values, (0, groups * TOPK_GROUP - length), value=float("-inf"))
    runs = values.reshape(batch, TOPK_GROUP, groups)
    best_groups = runs.amax(1).topk(count, dim=1, sorted=False).indices  # B×count
    members = runs.gather(2, best_groups[:, None, :].expand(-1, TOPK_GROUP, -1))  # B×G×count
    within = members.flatten(1).topk(count, dim=1, sorted=False).indices
    return within // count * groups + best_groups.gather(1, within % count)


def _without_duplicates(positions: Tensor, values: Tensor, fill: float = float("-inf")) -> Tensor:
    """``values`` with every repeat of a position in its row set to ``fill`` (counted once)."""
    ordered, order = positions.sort(dim=1)
    repeat = torch.zeros_like(ordered, dtype=torch.bool)
    repeat[:, 1:] = ordered[:, 1:] == ordered[:, :-1]
    mask = torch.zeros_like(repeat).scatter_(1, order, repeat)
    return values.masked_fill(mask, fill)


def topk_posterior(
    fields: EpitomeFields, patches: Tensor, topk: TopK, temperature: float = 1.0
) -> tuple[Tensor, Tensor]:
    """(positions, q): B×K candidate positions and q(s | x_b) ∝ exp(log p(x_b, s)/T) normalised
    over them (float64, each row sums to 1)."""
    positions, values = candidates(fields, patches, topk)
    return positions, torch.softmax(values.double() / temperature, dim=1)


def exact_posterior(fields: EpitomeFields, patches: Tensor, temperature: float = 1.0) -> Tensor:
    """The exact q(s | x_b) at every position, B×(L·H·W) in the log joint's dtype (for the check on
    a sample: float32 carries a report of masses to far below its printed digits)."""
    method = "constant_ivar" if fields.constant_ivar is not None else "auto"  # no FFT fields for a sample
    tempered = log_joint(fields, patches, method=method, scale=1.0 / temperature)  # log p(x, s)/T
    return torch.softmax(tempered.transpose(0, 1).reshape(len(patches), -1), dim=1)


def dropped_mass(fields: EpitomeFields, patches: Tensor, positions: Tensor, temperature: float = 1.0) -> Tensor:
    """1 − Σ_{s ∈ candidates} q_exact(s | x_b): the exact posterior mass the candidates miss, length B.
    A position listed twice in a row counts once."""
    return _outside(exact_posterior(fields, patches, temperature), positions)


def _outside(exact: Tensor, positions: Tensor) -> Tensor:
    kept = _without_duplicates(positions, exact.gather(1, positions.to(exact.device)), 0.0)  # each position once
    return (1.0 - kept.double().sum(1)).clamp_min(0.0)


def add_to_lrmap(lrmap: Tensor, centre_classes: Tensor, positions: Tensor, q: Tensor) -> None:
    """lrmap[c_b, s] += q(s | x_b) at every candidate s of every patch b (lrmap: K×L×H×W float64),
    the top-K form of :func:`eolabels.epitome.embed.embed_coarse_labels`."""
    per_class = lrmap[0].numel()
    index = centre_classes.long().to(positions.device)[:, None] * per_class + positions
    lrmap.view(-1).index_add_(0, index.flatten().cpu(), q.flatten().to(lrmap).cpu())


class PosteriorSums:
    """Sums approximate posteriors into lrmap[c] of their patches' classes (K×L×H×W float64): the
    candidates at once, the tails per subgrid block, spread over the blocks' positions once in
    :meth:`finish` (spreading is linear: the same sums, far fewer additions)."""

    def __init__(self, lrmap: Tensor) -> None:
        self.lrmap = lrmap
        self.blocks: Tensor | None = None
        self.last: Posterior | None = None

    def add(self, centre_classes: Tensor, posterior: Posterior) -> None:
        add_to_lrmap(self.lrmap, centre_classes, posterior.positions, posterior.q)
        if posterior.tail is None or posterior.tail_scale is None:
            return
        tail, scale = posterior.tail, posterior.tail_scale.to(posterior.tail)
        if self.blocks is None:
            self.blocks = torch.zeros(self.lrmap.shape[0], tail.shape[1], dtype=torch.float64)
        # class sums Σ_b [c_b = c] tail_b / Z_b: one vector-matrix product per run of equal classes, so
        # one per class where the caller groups the batch by class (a K×B by B×cells product would
        # multiply every tail by K weights, all but one of them zero)
        classes, counts = torch.unique_consecutive(centre_classes.long().cpu(), return_counts=True)
        start = 0
        for label, count in zip(classes.tolist(), counts.tolist()):
            self.blocks[label] += (scale[start : start + count] @ tail[start : start + count]).double().cpu()
            start += count
        self.last = posterior

    def finish(self) -> None:
        if self.blocks is not None and self.last is not None:
            self.lrmap += self.last.spread(self.blocks).view_as(self.lrmap)
            self.blocks = None


class DroppedMassCheck:
    """Collects :func:`dropped_mass` (and, with a tail, the total variation from the exact posterior)
    of up to ``patches`` patches, spread over each batch (batches may be sorted by class), from the
    first batches of a tile."""

    def __init__(self, patches: int) -> None:
        self.remaining = patches
        self.values: list[Tensor] = []
        self.variations: list[Tensor] = []

    def add(self, fields: EpitomeFields, patches: Tensor, posterior: Posterior, temperature: float) -> None:
        if self.remaining <= 0 or not len(patches):
            return
        picked = torch.arange(0, len(patches), max(1, len(patches) // self.remaining))[: self.remaining]
        on_device = picked.to(posterior.q.device)
        exact = exact_posterior(fields, patches[picked], temperature)
        positions = posterior.positions[on_device].to(exact.device)
        self.values.append(_outside(exact, positions).cpu())
        if posterior.tail is not None:
            approximate = posterior[on_device].dense(exact.dtype).to(exact.device)
            self.variations.append(0.5 * approximate.sub_(exact).abs_().sum(1).double().cpu())
        self.remaining -= len(picked)

    def report(self) -> DroppedMass | None:
        if not self.values:
            return None
        return DroppedMass.of(torch.cat(self.values), torch.cat(self.variations) if self.variations else None)
