"""What the alignment network groups together (the talk's Part IV; spec netsimilarity.md §1.2, §3.3).

On a fixed set of patches (pairs of the finest scale drawn from the original maps ``D_0`` with a
fixed seed, so every round looks at the same inputs), two ways of saying which patches are alike:

* the network's own similarity: the normalised kernel ``k(x, x') = tr(K^N(x, x')) / 2`` of the
  Jacobians of its 2-d displacement at the output's centre pixel (all parameters, optionally sketched),
  computed with the similarity library — what a parameter step taken for one patch does to another;
* a perceptual distance: the mean squared difference of the network's activations at one hand-picked
  layer (the deepest common block), as a perceptual loss compares inputs.

The talk's point is that the first is a data-dependent weighting over every layer's activations, so the
two groupings differ; per round we keep both neighbour lists and every patch's similarities.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from eolabels.alignment.network import JointInput
from eolabels.alignment.trainer import ScaleNetwork
from eolabels.atomic import atomic_path
from eolabels.similarity.jacobian import JacobianConfig, per_sample_jacobians
from eolabels.similarity.kernel import normalized_kernel_matrix, trace_similarity


def perceptual_distance(features: Tensor) -> Tensor:
    """``n x n`` mean squared difference of per-sample activations (``n x ...``, flattened): the
    perceptual loss between every two inputs at one layer."""
    flat = features.reshape(features.shape[0], -1).double()
    return torch.cdist(flat, flat).pow(2) / flat.shape[1]


def nearest_neighbours(scores: Tensor, queries: list[int], k: int, *, larger_is_closer: bool) -> list[list[int]]:
    """The ``k`` nearest other samples of each query under ``scores`` (``n x n``; a similarity when
    ``larger_is_closer``, else a distance), the query itself left out, ties broken by sample order."""
    if k >= scores.shape[0]:
        raise ValueError(f"{k} neighbours asked of {scores.shape[0]} samples (one of them the query)")
    out = []
    for q in queries:
        row = scores[q].clone().double()
        row = -row if larger_is_closer else row
        row[q] = float("inf")
        order = np.argsort(row.numpy(), kind="stable")
        out.append([int(i) for i in order[:k]])
    return out


def query_rows(n: int, count: int) -> list[int]:
    """``count`` query patches spread evenly over the ``n`` samples (always the first one)."""
    if not 1 <= count <= n:
        raise ValueError(f"{count} query patches asked of {n} samples")
    return [int(i) for i in np.linspace(0, n - 1, count).round()]


def network_similarity(net: ScaleNetwork, patches: dict[str, Tensor], sketch_dim: int | None, seed: int) -> Tensor:
    """``n x n`` normalised similarity ``tr(K^N)/2`` of the network's centre-pixel displacement."""
    joint = JointInput(net.model, patches["image"].shape[1]).double()
    inputs = torch.cat([patches["image"], patches["map"]], dim=1).double()
    config = JacobianConfig(subset="all", pixel="centre", centred=False, sketch_dim=sketch_dim, sketch_seed=seed)
    try:
        jac = per_sample_jacobians(joint, inputs, config, batch_size=16, progress=False)
    finally:
        net.model.float()
    return trace_similarity(normalized_kernel_matrix(jac))


def layer_activations(net: ScaleNetwork, patches: dict[str, Tensor]) -> Tensor:
    """The deepest common block's activations of every patch (the perceptual distance's layer)."""
    captured: list[Tensor] = []
    hook = net.model.common[-1].register_forward_hook(lambda _m, _i, out: captured.append(out.detach()))
    try:
        with torch.no_grad():
            net.model(patches["image"], patches["map"])
    finally:
        hook.remove()
    return captured[0]


@dataclass(frozen=True)
class Neighbours:
    """One round's groupings of the fixed patches: both matrices, the queries, their neighbour lists."""

    similarity: Tensor
    perceptual: Tensor
    queries: list[int]
    by_network: list[list[int]]
    by_perceptual: list[list[int]]

    def save(self, path: str | os.PathLike[str]) -> None:
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez_compressed(f, similarity=self.similarity.numpy(), perceptual=self.perceptual.numpy(),
                                queries=np.array(self.queries), by_network=np.array(self.by_network),
                                by_perceptual=np.array(self.by_perceptual))


def group_patches(net: ScaleNetwork, patches: dict[str, Tensor], queries: int, k: int, sketch_dim: int | None,
                  seed: int) -> Neighbours:
    """Both groupings of ``patches`` by ``net`` for ``queries`` query patches, ``k`` neighbours each."""
    similarity = network_similarity(net, patches, sketch_dim, seed)
    perceptual = perceptual_distance(layer_activations(net, patches))
    rows = query_rows(similarity.shape[0], queries)
    return Neighbours(similarity, perceptual, rows, nearest_neighbours(similarity, rows, k, larger_is_closer=True),
                      nearest_neighbours(perceptual, rows, k, larger_is_closer=False))
