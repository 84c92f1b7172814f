"""Reconstruction of high-res labels from sampled epitome positions (spec §5).

Each window of a tile draws positions from its posterior q(s | x) and votes with the aligned w×w
window of p(ℓ|s), the labels embedded into the epitome (:mod:`eolabels.epitome.embed`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from eolabels.epitome.model import GaussianEpitome, Method, chunk_size, log_joint, resolve_method
from eolabels.epitome.patches import covering_origins, crop
from eolabels.epitome.sampling import sample_positions_from_log_joint, window_indices
from eolabels.epitome.topk import DroppedMass, DroppedMassCheck, TopK, approximate_posterior


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
    topk: TopK | None = None,
    dropped: list[DroppedMass] | None = None,
) -> Tensor:
    """High-res label scores K×H×W for one C×H×W tile (spec §5).

    Sliding w×w windows (``stride`` defaults to w; the last window is flush with the border) cover
    every pixel; for each window ``samples`` positions are drawn from q(·|x) with temperature T
    (default (w/11)²) and the aligned p(ℓ|·) windows are summed into the tile.  Argmax over K gives
    the map.  ``topk``: positions are drawn from the approximate posterior (K candidates and, with
    its tail, the subgrid's blocks; :mod:`eolabels.epitome.topk`; ``method`` is then unused), and
    what it drops against the exact posterior on a sample of windows is appended to ``dropped``
    when given.
    """
    stride = patch_size if stride is None else stride
    temperature = (patch_size / 11) ** 2 if temperature is None else temperature
    origins = covering_origins(image.shape[-2], image.shape[-1], patch_size, stride)
    fields = epitome.fields(patch_size)
    # batches no larger than one chunk of the log joint, which then needs no concatenation
    step = min(windows_per_batch, chunk_size(fields, method=resolve_method(fields, method)))
    check = DroppedMassCheck(topk.check_patches if topk is not None and dropped is not None else 0)
    scores = torch.zeros(label_probs.shape[0], *image.shape[-2:], dtype=label_probs.dtype)
    offsets = torch.arange(patch_size)
    for start in range(0, len(origins), step):
        part = origins[start : start + step]
        patches = crop([image], part).to(epitome.mean)
        if topk is None:
            energies = log_joint(fields, patches, method=method)
            positions = sample_positions_from_log_joint(energies, samples, temperature, generator, overwrite_input=True)
        else:
            approximate = approximate_posterior(fields, patches, topk, temperature)
            positions = approximate.sample(samples, generator)
            check.add(fields, patches, approximate, temperature)
        positions = positions.to(label_probs.device)
        votes = reconstruct_patch_labels(label_probs, positions, patch_size).cpu()
        rows = (part.top[:, None] + offsets)[:, :, None].expand(-1, -1, patch_size)
        cols = (part.left[:, None] + offsets)[:, None, :].expand(-1, patch_size, -1)
        flat = (rows * image.shape[-1] + cols).flatten()
        scores.view(scores.shape[0], -1).index_add_(1, flat, votes.movedim(1, 0).reshape(scores.shape[0], -1))
    report = check.report()
    if dropped is not None and report is not None:
        dropped.append(report)
    return scores
