"""Scalar output projections of spec §1.3.5 (posnegflat and random masks) and the seeds that reach
the Jacobian sketch and the random mask (config.seed through the audit and the self-denoising
diagnostics)."""

from __future__ import annotations

import math
from dataclasses import asdict

import pytest
import torch
from torch import nn

from eolabels.similarity.audit import AuditSettings
from eolabels.similarity.density import accumulate_reference, score_patches
from eolabels.similarity.jacobian import (
    JacobianConfig,
    network_fingerprint,
    output_mask,
    per_sample_jacobians,
)


def test_posnegflat_mask_by_hand():
    mask = output_mask("posnegflat", 4, target_class=2)
    assert mask.tolist() == [-1 / 3, -1 / 3, 1.0, -1 / 3]
    assert float(mask.sum()) == pytest.approx(0.0, abs=1e-15)
    with pytest.raises(ValueError, match="class 4 outside 0..3"):
        output_mask("posnegflat", 4, target_class=4)
    with pytest.raises(ValueError, match="unknown output projection"):
        JacobianConfig(projection="negpos")


def test_posnegflat_jacobian_of_a_linear_model_by_hand():
    # z = W x + b with C = 3, class c = 1: m = (-1/2, 1, -1/2) sums to 0, so
    # s = m^T log_softmax(z) = m^T z - (m^T 1) lse(z) = m^T z; ds/dW = m x^T (row-major), ds/db = m.
    # x = (2, -1): ds/dW = [[-1, 0.5], [2, -1], [-1, 0.5]], ds/db = (-0.5, 1, -0.5), for any W, b.
    torch.manual_seed(0)
    model = nn.Linear(2, 3).double()
    x = torch.tensor([[2.0, -1.0]], dtype=torch.float64)
    config = JacobianConfig(subset="all", pixel=None, projection="posnegflat", projection_class=1)
    jac = per_sample_jacobians(model, x, config)
    expected = torch.tensor([[[-1.0, 0.5, 2.0, -1.0, -1.0, 0.5, -0.5, 1.0, -0.5]]], dtype=torch.float64)
    torch.testing.assert_close(jac, expected, rtol=0, atol=1e-15)


def test_random_mask_jacobian_of_a_linear_model_by_hand():
    # W = 0, b = 0: softmax(z) = (1/3, 1/3, 1/3), so ds/dz = m - (m^T 1) / 3: the mask minus its mean
    # (a random mask does not sum to 0, the softmax derivative matters); ds/dW = g x^T, ds/db = g.
    model = nn.Linear(2, 3).double()
    with torch.no_grad():
        model.weight.zero_()
        model.bias.zero_()
    x = torch.tensor([[2.0, -1.0]], dtype=torch.float64)
    config = JacobianConfig(subset="all", pixel=None, projection="random", projection_seed=11)
    mask = output_mask("random", 3, seed=11)
    g = mask - mask.mean()
    expected = torch.cat([torch.outer(g, x[0]).reshape(-1), g])[None, None]
    torch.testing.assert_close(per_sample_jacobians(model, x, config), expected, rtol=0, atol=1e-15)
    assert abs(float(mask.sum())) > 1e-3  # so m x^T alone would be wrong


def _autograd_jacobians(net: nn.Module, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """m^T log_softmax(z) at the centre pixel, differentiated by plain autograd, one sample at a time."""
    rows = []
    for sample in x:
        out = net(sample[None])[0]
        z = out[:, out.shape[1] // 2, out.shape[2] // 2]
        s = mask @ torch.log_softmax(z, dim=0)
        grads = torch.autograd.grad(s, list(net.parameters()))
        rows.append(torch.cat([g.reshape(-1) for g in grads]))
    return torch.stack(rows)[:, None, :]


@pytest.mark.parametrize("projection", ["posnegflat", "random"])
def test_projected_jacobians_equal_autograd_on_a_tiny_unet(plain_unet, projection):
    torch.manual_seed(3)
    x = torch.randn(3, 3, 8, 8, dtype=torch.float64)
    config = JacobianConfig(subset="all", projection=projection, projection_class=2, projection_seed=5)
    mask = output_mask(projection, 4, target_class=2, seed=5)
    jac = per_sample_jacobians(plain_unet, x, config)
    assert jac.shape == (3, 1, sum(p.numel() for p in plain_unet.parameters()))
    torch.testing.assert_close(jac, _autograd_jacobians(plain_unet, x, mask), rtol=1e-10, atol=1e-12)
    # the frozen-trunk tail path (last block + head) gives the matching columns
    tail = per_sample_jacobians(plain_unet, x, JacobianConfig(projection=projection, projection_class=2,
                                                              projection_seed=5))
    torch.testing.assert_close(tail, jac[:, :, -tail.shape[2]:], rtol=1e-10, atol=1e-12)


class ShiftedLogits(nn.Module):
    """The same network with a parameter-dependent amount added to every logit (the softmax gauge)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        return out + 0.7 * out.sum(dim=1, keepdim=True) ** 2


@pytest.mark.parametrize(
    "config",
    [
        JacobianConfig(subset="all", projection="posnegflat", projection_class=1),
        JacobianConfig(subset="all", projection="random", projection_seed=2),
        JacobianConfig(subset="all"),  # centred logits
    ],
)
def test_projections_are_gauge_free(plain_unet, config):
    torch.manual_seed(4)
    x = torch.randn(3, 3, 8, 8, dtype=torch.float64)
    plain = per_sample_jacobians(plain_unet, x, config)
    shifted = per_sample_jacobians(ShiftedLogits(plain_unet), x, config)
    torch.testing.assert_close(shifted, plain, rtol=1e-9, atol=1e-12)
    raw = JacobianConfig(subset="all", centred=False)  # the raw logits are not
    assert (per_sample_jacobians(ShiftedLogits(plain_unet), x, raw) - per_sample_jacobians(plain_unet, x, raw)
            ).abs().max() > 1e-3


def test_random_mask_is_fixed_by_its_seed(plain_unet):
    torch.manual_seed(6)
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)

    def jac(seed: int) -> torch.Tensor:
        return per_sample_jacobians(plain_unet, x, JacobianConfig(projection="random", projection_seed=seed))

    torch.testing.assert_close(jac(1), jac(1), rtol=0, atol=0)
    assert (jac(1) - jac(2)).abs().max() > 1e-6
    assert not torch.equal(output_mask("random", 4, seed=1), output_mask("random", 4, seed=2))
    # the fingerprint records the projection: Jacobians of another mask are refused
    fp = {s: network_fingerprint(plain_unet, JacobianConfig(projection="random", projection_seed=s), 3) for s in (1, 2)}
    assert fp[1].mismatches(fp[2]) == ["projection: 'random(seed=1)' vs 'random(seed=2)'"]
    acc = accumulate_reference(plain_unet, x, JacobianConfig(projection="random", projection_seed=1))
    with pytest.raises(ValueError, match="projection"):
        score_patches(acc, plain_unet, x, JacobianConfig(projection="random", projection_seed=2))


def test_scalar_projection_soft_count_is_a_sum_of_gradient_cosines(plain_unet):
    # d = 1: k(x, x') = g.g' / (|g| |g'|) (spec §1.1), N_S(x_i) = sum_j k_ij (self included)
    torch.manual_seed(7)
    x = torch.randn(5, 3, 8, 8, dtype=torch.float64)
    config = JacobianConfig(projection="posnegflat", projection_class=3)
    g = per_sample_jacobians(plain_unet, x, config)[:, 0, :]
    g = g / g.norm(dim=1, keepdim=True)
    acc = accumulate_reference(plain_unet, x, config)
    soft, _ = score_patches(acc, plain_unet, x, config)
    torch.testing.assert_close(soft, (g @ g.T).sum(dim=1))
    assert float(soft.min()) < 5 - 1e-6  # not all equal


# --- seeds (config.seed -> sketch and random mask) --------------------------------------------


def test_audit_settings_pass_the_seed_and_the_projection():
    config = AuditSettings(sketch_dim=16, seed=9, projection="random").jacobian
    assert (config.sketch_seed, config.projection_seed, config.projection) == (9, 9, "random")
    assert AuditSettings().jacobian.projection is None and AuditSettings().jacobian.centred
    assert AuditSettings(projection="posnegflat", projection_class=4).jacobian.projection_class == 4
    with pytest.raises(ValueError, match="unknown audit projection"):
        AuditSettings(projection="flat")


def test_audit_sketch_depends_on_the_seed(plain_unet):
    torch.manual_seed(8)
    x = torch.randn(3, 3, 8, 8, dtype=torch.float64)

    def sketched(seed: int) -> torch.Tensor:
        return per_sample_jacobians(plain_unet, x, AuditSettings(sketch_dim=16, seed=seed).jacobian)

    torch.testing.assert_close(sketched(4), sketched(4), rtol=0, atol=0)
    assert (sketched(4) - sketched(5)).abs().max() > 1e-6
    # the exact Jacobians do not depend on it
    torch.testing.assert_close(
        per_sample_jacobians(plain_unet, x, AuditSettings(seed=4).jacobian),
        per_sample_jacobians(plain_unet, x, AuditSettings(seed=5).jacobian), rtol=0, atol=0,
    )


def test_audit_stage_hands_the_config_seed_to_the_audit(monkeypatch, tmp_path):
    from eolabels.similarity import stages

    seen = {}
    monkeypatch.setattr(stages, "load_segmenter", lambda path, device: "segmenter")

    def fake_audit(segmenter, *args, heldout_split=None):
        seen["settings"] = args[5]
        import pandas as pd

        return pd.DataFrame()

    monkeypatch.setattr(stages, "run_density_audit", fake_audit)
    audit = {k: v for k, v in asdict(AuditSettings(sketch_dim=32, stride=8)).items() if k != "seed"}
    outputs = stages.AuditOutputs(tmp_path, *"abcdef")
    stages.audit_stage(
        model_path="m.pt", dataset_root="d", heldout_root="h", outputs=outputs, audit=audit, seed=13,
        heldout_split=None,
    )
    assert seen["settings"] == AuditSettings(sketch_dim=32, stride=8, seed=13)
    assert seen["settings"].jacobian.sketch_seed == 13


def test_denoising_diagnostics_sketch_depends_on_the_seed(plain_unet):
    from eolabels.similarity.segmentation import BandNormaliser, Segmenter, TrainSettings
    from eolabels.similarity.selfdenoise import DenoiseSettings, round_diagnostics

    torch.manual_seed(9)
    patches = torch.randn(6, 3, 8, 8, dtype=torch.float64)
    segmenter = Segmenter(plain_unet, BandNormaliser.fit(patches.numpy()), TrainSettings(), 4)
    labels = torch.tensor([0, 1, 2, 3, 0, 1]).numpy()
    settings = DenoiseSettings(anchor_sketch_dim=8)

    def diagnostics(seed: int) -> dict[str, float]:
        return round_diagnostics(segmenter, patches, labels, settings, sketch_seed=seed)

    assert diagnostics(1) == diagnostics(1)
    assert not math.isclose(diagnostics(1)["median_rho"], diagnostics(2)["median_rho"], rel_tol=1e-9)
