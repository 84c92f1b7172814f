"""The seed's own analysis of the alignment network (spec §3.3): denoising factor and shift.

On a fixed set of anchor pairs of the finest scale (drawn with a fixed seed, so every round is scored
on the same inputs), the per-sample Jacobians of the network's 2-d displacement at the output's centre
pixel (all parameters; optionally sketched, §2.3) give the unnormalised kernel ``K_ij = J_i J_j^T``.
From it, with the similarity library: the denoising factor ``rho_i`` and ``n_eff = 1/rho^2``, the
shift ``|y^_i - E_k[y~]_i|`` against the pairs' targets, and the neighbour consistency
``|y^_i - E_k[y^]_i|`` the authors' code reports, all in px of the network's grid. The authors differentiate
the sum over a 4 x 4 output window; we use the centre pixel, as our segmentation spec does (§7).
"""

from __future__ import annotations

import numpy as np
import torch

from eolabels.alignment.network import JointInput
from eolabels.alignment.pairs import PairSampler
from eolabels.alignment.trainer import ScaleNetwork
from eolabels.similarity.denoise import denoising_factor, effective_sample_size, neighbour_consistency, shift
from eolabels.similarity.jacobian import JacobianConfig, per_sample_jacobians


def anchor_pairs(sampler: PairSampler, count: int, seed: int) -> dict[str, torch.Tensor]:
    """``count`` pairs drawn without augmentation from a generator of ``seed`` (the same every round)."""
    rng = np.random.default_rng([seed, 7919])
    plain = PairSampler(sampler.tiles, sampler.encoder, sampler.input_size, sampler.output_size,
                        sampler.amplitude, sampler.correlation_length, augment=False)
    return plain.batch(rng, count)


def similarity_diagnostics(net: ScaleNetwork, anchors: dict[str, torch.Tensor], sketch_dim: int | None,
                           seed: int) -> dict[str, float]:
    """Median / mean denoising factor, median n_eff, median shift and neighbour consistency (px)."""
    joint = JointInput(net.model, anchors["image"].shape[1]).double()
    inputs = torch.cat([anchors["image"], anchors["map"]], dim=1).double()
    config = JacobianConfig(subset="all", pixel="centre", centred=False, sketch_dim=sketch_dim, sketch_seed=seed)
    try:
        jac = per_sample_jacobians(joint, inputs, config, batch_size=16, progress=False)
        with torch.no_grad():
            out = joint(inputs)
    finally:
        net.model.float()
    o = out.shape[-1]
    centre = (o // 2, o // 2)
    predictions = out[:, :, centre[0], centre[1]] / 0.5 * net.amplitude_px
    targets = anchors["target"][:, :, centre[0], centre[1]].double()
    rho = denoising_factor(jac)
    return {
        "anchors": float(jac.shape[0]),
        "rho_median": float(rho.median()),
        "rho_mean": float(rho.mean()),
        "n_eff_median": float(effective_sample_size(rho).median()),
        "shift_px_median": float(shift(jac, predictions, targets).median()),
        "consistency_px_median": float(neighbour_consistency(jac, predictions).median()),
    }
