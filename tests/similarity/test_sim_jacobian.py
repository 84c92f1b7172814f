"""Jacobian extraction: closed forms, parameter subsets, centring, sketch (spec §1.3, §2.3)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from eolabels.similarity.jacobian import (
    JacobianConfig,
    centring_basis,
    network_fingerprint,
    per_sample_jacobians,
    select_parameters,
    sketch_tensor_jacobian,
)
from eolabels.similarity.kernel import feature_map, kernel_matrix, similarity_matrix

VECTOR = JacobianConfig(subset="all", pixel=None, centred=False)


def test_linear_model_jacobian_in_closed_form():
    # f(x) = W x + b: d f_a / d W = e_a x^T (row-major), d f_a / d b = e_a
    torch.manual_seed(0)
    model = nn.Linear(3, 2).double()
    x = torch.randn(5, 3, dtype=torch.float64)
    jac = per_sample_jacobians(model, x, VECTOR)
    eye = torch.eye(2, dtype=torch.float64)
    expected = torch.cat(
        [torch.einsum("ab,nj->nabj", eye, x).reshape(5, 2, 6), eye.expand(5, 2, 2)], dim=2
    )
    torch.testing.assert_close(jac, expected, rtol=0, atol=0)
    # hence K(x, x') = (x.x' + 1) I and k = (x.x' + 1) / sqrt((|x|^2 + 1)(|x'|^2 + 1))
    aug = torch.cat([x, torch.ones(5, 1, dtype=torch.float64)], dim=1)
    aug = aug / aug.norm(dim=1, keepdim=True)
    torch.testing.assert_close(similarity_matrix(feature_map(jac)[0]), aug @ aug.T)


def test_identical_inputs_have_similarity_one_and_different_inputs_less(plain_unet):
    torch.manual_seed(1)
    x = torch.randn(3, 3, 8, 8, dtype=torch.float64)
    x[1] = x[0]
    jac = per_sample_jacobians(plain_unet, x, JacobianConfig())
    sim = similarity_matrix(feature_map(jac)[0])
    assert float(sim[0, 1]) == pytest.approx(1.0, abs=1e-12)
    assert float(sim[0, 2]) < 0.999


def test_centring_basis_is_orthonormal_and_sum_zero():
    basis = centring_basis(9)
    torch.testing.assert_close(basis.T @ basis, torch.eye(8, dtype=torch.float64))
    torch.testing.assert_close(
        basis.sum(0), torch.zeros(8, dtype=torch.float64), rtol=0, atol=1e-15
    )
    torch.testing.assert_close(
        centring_basis(2), torch.tensor([[2**-0.5], [-(2**-0.5)]], dtype=torch.float64)
    )


class LogSoftmaxOutput(nn.Module):
    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(self.net(x), dim=1)


def test_centred_logits_and_centred_log_softmax_have_equal_jacobians(plain_unet):
    torch.manual_seed(2)
    x = torch.randn(4, 3, 8, 8, dtype=torch.float64)
    config = JacobianConfig(subset="all")
    logits = per_sample_jacobians(plain_unet, x, config)
    log_probs = per_sample_jacobians(LogSoftmaxOutput(plain_unet), x, config)
    assert logits.shape == (4, 3, sum(p.numel() for p in plain_unet.parameters()))
    torch.testing.assert_close(logits, log_probs, rtol=0, atol=1e-12)
    raw = per_sample_jacobians(plain_unet, x, JacobianConfig(subset="all", centred=False))
    torch.testing.assert_close(logits, centring_basis(4).T @ raw)
    # without centring the two differ: the softmax gauge direction is not removed
    raw_log_probs = per_sample_jacobians(
        LogSoftmaxOutput(plain_unet), x, JacobianConfig(subset="all", centred=False)
    )
    assert (raw - raw_log_probs).abs().max() > 1e-3


def test_plain_unet_subsets(plain_unet):
    head = ["head.weight", "head.bias"]
    last_block = ["decoder.1.0.weight", "decoder.1.0.bias"]
    assert select_parameters(plain_unet, "head") == head
    assert select_parameters(plain_unet, "last_block+head") == last_block + head
    assert (
        select_parameters(plain_unet, "decoder")
        == ["decoder.0.0.weight", "decoder.0.0.bias"] + last_block + head
    )
    assert len(select_parameters(plain_unet, "all")) == 10


def test_smp_unet_subsets():
    smp = pytest.importorskip("segmentation_models_pytorch")
    model = smp.Unet("resnet18", encoder_weights=None, in_channels=4, classes=9)
    names = select_parameters(model, "last_block+head")
    assert names[0] == "decoder.blocks.4.conv1.0.weight"
    assert names[-2:] == ["segmentation_head.0.weight", "segmentation_head.0.bias"]
    assert all(n.startswith(("decoder.blocks.4.", "segmentation_head.")) for n in names)
    assert len(select_parameters(model, "decoder")) == 32


def test_missing_subset_gives_a_clear_error():
    net = nn.Sequential(nn.Conv2d(2, 3, 3), nn.Tanh(), nn.Conv2d(3, 2, 1))
    with pytest.raises(ValueError, match="'decoder'.*subset='all'"):
        select_parameters(net, "last_block+head")
    with pytest.raises(ValueError, match="head"):
        select_parameters(net, "head")
    with pytest.raises(ValueError, match="unknown parameter subset"):
        JacobianConfig(subset="encoder")


def test_tail_jacobian_equals_the_matching_columns_of_the_full_jacobian(plain_unet):
    torch.manual_seed(3)
    x = torch.randn(3, 3, 8, 8, dtype=torch.float64)
    full = per_sample_jacobians(plain_unet, x, JacobianConfig(subset="all"))
    tail = per_sample_jacobians(plain_unet, x, JacobianConfig())
    offsets, start = {}, 0
    for name, p in plain_unet.named_parameters():
        offsets[name] = (start, start + p.numel())
        start += p.numel()
    columns = torch.cat(
        [torch.arange(*offsets[n]) for n in select_parameters(plain_unet, "last_block+head")]
    )
    torch.testing.assert_close(tail, full[:, :, columns], rtol=0, atol=0)


class ScaledAfterHead(nn.Module):
    """Something runs after the head: the frozen-trunk split must not be used."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.decoder, self.head, self.net = net.decoder, net.head, net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 2 * self.net(x)


def test_network_with_an_op_after_the_head_falls_back_to_the_whole_network(plain_unet):
    torch.manual_seed(6)
    x = torch.randn(3, 3, 8, 8, dtype=torch.float64)
    config = JacobianConfig(centred=False)
    scaled = per_sample_jacobians(ScaledAfterHead(plain_unet), x, config)
    torch.testing.assert_close(scaled, 2 * per_sample_jacobians(plain_unet, x, config))


def test_head_only_kernel_is_the_augmented_feature_cosine(plain_unet):
    # spec §1.3.3: a 1x1 conv head gives K~ = (<h, h'> + 1) I, h = head input at the pixel
    torch.manual_seed(4)
    x = torch.randn(5, 3, 8, 8, dtype=torch.float64)
    features = {}
    hook = plain_unet.head.register_forward_hook(lambda m, i, o: features.setdefault("h", i[0]))
    with torch.no_grad():
        plain_unet(x)
    hook.remove()
    h = features["h"][:, :, 4, 4]
    aug = torch.cat([h, torch.ones(5, 1, dtype=torch.float64)], dim=1)
    jac = per_sample_jacobians(plain_unet, x, JacobianConfig(subset="head"))
    kernel = kernel_matrix(jac)
    expected = (aug @ aug.T)[:, :, None, None] * torch.eye(3, dtype=torch.float64)
    torch.testing.assert_close(kernel, expected)
    aug = aug / aug.norm(dim=1, keepdim=True)
    torch.testing.assert_close(similarity_matrix(feature_map(jac)[0]), aug @ aug.T)


def test_sketch_matrix_statistics_and_determinism():
    eye = torch.eye(3000, dtype=torch.float64)[None]  # sketching I gives Pi^T (p x m)
    pi_t = sketch_tensor_jacobian(eye, "w", 256, seed=7)[0]
    assert pi_t.shape == (3000, 256)
    assert abs(float(pi_t.mean())) < 0.01 / 16**0.5
    assert float(pi_t.var()) == pytest.approx(1 / 256, rel=0.02)
    torch.testing.assert_close(
        pi_t, sketch_tensor_jacobian(eye, "w", 256, seed=7)[0], rtol=0, atol=0
    )
    assert (pi_t - sketch_tensor_jacobian(eye, "w", 256, seed=8)[0]).abs().max() > 0.1
    assert (pi_t - sketch_tensor_jacobian(eye, "b", 256, seed=7)[0]).abs().max() > 0.1


def test_sketched_jacobians_are_the_exact_ones_times_the_sketch(plain_unet, monkeypatch):
    torch.manual_seed(5)
    x = torch.randn(4, 3, 8, 8, dtype=torch.float64)
    exact = per_sample_jacobians(plain_unet, x, JacobianConfig(subset="all"))
    sketched = per_sample_jacobians(
        plain_unet, x, JacobianConfig(subset="all", sketch_dim=64, sketch_seed=3), batch_size=3
    )
    assert sketched.shape == (4, 3, 64)
    expected, start = torch.zeros_like(sketched), 0
    for name, p in plain_unet.named_parameters():
        block = exact[:, :, start : start + p.numel()]
        expected += sketch_tensor_jacobian(block, name, 64, seed=3)
        start += p.numel()
    torch.testing.assert_close(sketched, expected)
    # too large to keep in memory: redrawn per batch, same matrix
    monkeypatch.setattr("eolabels.similarity.jacobian.SKETCH_CACHE_BYTES", 0)
    redrawn = per_sample_jacobians(
        plain_unet, x, JacobianConfig(subset="all", sketch_dim=64, sketch_seed=3), batch_size=3
    )
    torch.testing.assert_close(redrawn, sketched, rtol=0, atol=0)


def test_sketched_similarity_approximates_exact():
    gen = torch.Generator().manual_seed(0)
    jac = torch.randn(1, 2, 4000, generator=gen, dtype=torch.float64) + torch.randn(
        20, 2, 4000, generator=gen, dtype=torch.float64
    )
    exact = similarity_matrix(feature_map(jac)[0])
    sketched = similarity_matrix(feature_map(sketch_tensor_jacobian(jac, "w", 1024, seed=1))[0])
    error = (sketched - exact).abs()
    assert float(error.max()) <= 0.15  # per-pair std sqrt((1 + k^2)/m) <= 0.045
    assert float(error.max()) > 1e-4  # it is an approximation


def test_fingerprint_tracks_weights_subset_and_bands(plain_unet):
    base = network_fingerprint(plain_unet, JacobianConfig(), input_channels=3)
    assert base == network_fingerprint(plain_unet, JacobianConfig(), input_channels=3)
    assert base.mismatches(network_fingerprint(plain_unet, JacobianConfig(subset="head"), 3)) == [
        "subset: 'last_block+head' vs 'head'",
        "n_parameters: 168 vs 20",  # 4*4*9+4 + 4*4+4 vs 4*4+4
    ]
    assert "band count" in base.mismatches(network_fingerprint(plain_unet, JacobianConfig(), 4))[0]
    with torch.no_grad():
        plain_unet.encoder[0][0].weight[0, 0, 0, 0] += 1e-9
    assert base.mismatches(network_fingerprint(plain_unet, JacobianConfig(), 3))[0].startswith(
        "network weights"
    )
