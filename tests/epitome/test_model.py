"""Gaussian epitome log joint (spec §2, §4; checklist §12.1–§12.3)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from epitome_reference import brute_force

from eolabels.epitome.cost_model import choose_method
from eolabels.epitome.fast_paths import log_joint_fft
from eolabels.epitome.model import (
    GaussianEpitome,
    chunk_size,
    log_joint,
    log_joint_direct,
    patch_log_likelihood,
    posterior,
)


def random_epitome(layers, channels, height, width, dtype=torch.float64, seed=0) -> GaussianEpitome:
    g = torch.Generator().manual_seed(seed)
    return GaussianEpitome(
        torch.rand(layers, channels, height, width, generator=g, dtype=dtype),
        1 + 9 * torch.rand(layers, channels, height, width, generator=g, dtype=dtype),
        torch.randn(layers, height, width, generator=g, dtype=dtype),
    )


def brute_force_log_joint(epitome: GaussianEpitome, patches: torch.Tensor) -> np.ndarray:
    """Per-position wrapped Gaussian log-density (+ log prior), written with explicit loops."""
    return brute_force(epitome.mean, epitome.ivar, epitome.prior_logits, patches)


@pytest.mark.parametrize("size", [1, 3, 5])
@pytest.mark.parametrize("method", ["direct", "fft"])
def test_log_joint_matches_brute_force(size, method):
    epitome = random_epitome(2, 3, 9, 8, dtype=torch.float32)
    patches = torch.rand(4, 3, size, size, generator=torch.Generator().manual_seed(1))
    expected = brute_force_log_joint(epitome, patches)
    got = log_joint(epitome.fields(size), patches, method=method).detach().numpy()
    assert got.shape == (2, 4, 9, 8)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


def test_direct_and_fft_agree_in_float32_with_gradients():
    epitome = random_epitome(1, 4, 40, 33, dtype=torch.float32)
    patches = torch.rand(6, 4, 11, 11, generator=torch.Generator().manual_seed(2))
    values = {}
    grads = {}
    for method in ("direct", "fft"):
        epitome.zero_grad()
        energy = log_joint(epitome.fields(11), patches, method=method)
        patch_log_likelihood(energy).sum().backward()
        values[method] = energy.detach()
        grads[method] = [p.grad.clone() for p in epitome.parameters()]
    scale = values["direct"].abs().max()
    assert (values["direct"] - values["fft"]).abs().max() <= 1e-4 * scale
    for a, b in zip(grads["direct"], grads["fft"]):
        assert torch.allclose(a, b, rtol=1e-3, atol=1e-4 * a.abs().max())


def test_chunking_does_not_change_values():
    epitome = random_epitome(2, 2, 12, 12)
    patches = torch.rand(10, 2, 3, 3, dtype=torch.float64)
    fields = epitome.fields(3)
    whole = log_joint(fields, patches, method="direct", max_chunk_elements=1 << 30)
    for method in ("direct", "fft"):
        # largest FFT intermediate per patch: L·H·(n + 2) = 2·12·14 floats (n = W = 12, a fast size)
        bound = 3 * 2 * 12 * 14
        chunked = log_joint(fields, patches, method=method, max_chunk_elements=bound)
        assert fields.fft_length == 12 and chunk_size(fields, bound) == 3
        assert torch.allclose(whole, chunked, rtol=1e-12, atol=1e-12)


def test_patch_of_side_one_is_a_per_pixel_diagonal_gmm():
    """Spec §12.2: w = 1 gives N² components N(μ[:, m, n], diag 1/λ) weighted by the prior."""
    epitome = random_epitome(1, 3, 5, 4)
    pixels = torch.rand(7, 3, 1, 1, dtype=torch.float64)
    energy = log_joint(epitome.fields(1), pixels)[0].detach()  # B×H×W
    mean = epitome.mean.detach()[0].reshape(3, -1).T.numpy()
    var = 1 / epitome.ivar.detach()[0].reshape(3, -1).T.numpy()
    weights = torch.softmax(epitome.prior_logits.detach().flatten(), 0).numpy()
    x = pixels[:, :, 0, 0].numpy()
    for b in range(len(x)):
        log_normal = -0.5 * (((x[b] - mean) ** 2 / var) + np.log(2 * math.pi * var)).sum(1)
        expected = log_normal + np.log(weights) + 1.5 * math.log(2 * math.pi)  # constant dropped in §2
        np.testing.assert_allclose(energy[b].flatten().numpy(), expected, rtol=1e-10)


def test_posterior_sums_to_one_jointly_over_layers_and_positions():
    energy = torch.randn(3, 5, 6, 7, dtype=torch.float64) * 20
    q = posterior(energy, temperature=2.0)
    assert torch.allclose(q.sum(dim=(0, 2, 3)), torch.ones(5, dtype=torch.float64))
    # Joint over layers: shifting one layer's energies moves mass between layers.
    shifted = energy.clone()
    shifted[0] += 10
    assert posterior(shifted)[0].sum() > posterior(energy)[0].sum()


def test_patch_cut_from_self_epitome_maps_to_its_own_centre():
    g = torch.Generator().manual_seed(3)
    image = torch.rand(3, 20, 17, generator=g)
    epitome = GaussianEpitome.from_image(image)
    size, half = 5, 2
    centres = [(2, 2), (10, 8), (17, 14), (5, 12)]
    patches = torch.stack([image[:, r - half : r + half + 1, c - half : c + half + 1] for r, c in centres])
    energy = log_joint(epitome.fields(size), patches)
    flat = energy[0].flatten(1).argmax(1)
    assert [(int(i) // 17, int(i) % 17) for i in flat] == centres


def test_initialisation_matches_the_paper():
    epitome = GaussianEpitome.initialise(2, 4, 6, generator=torch.Generator().manual_seed(0))
    assert epitome.shape == (2, 4, 6, 6)
    mean = epitome.mean.detach()
    assert 0.5 <= float(mean.min()) and float(mean.max()) <= 0.6
    assert torch.all(epitome.ivar == 10) and torch.all(epitome.prior_logits == 0)


def test_rejects_even_or_oversized_patches():
    epitome = random_epitome(1, 1, 6, 6)
    with pytest.raises(ValueError, match="odd"):
        epitome.fields(4)
    with pytest.raises(ValueError, match="exceeds"):
        epitome.fields(7)
    with pytest.raises(ValueError, match="patches must be"):
        log_joint_direct(epitome.fields(3), torch.zeros(2, 2, 3, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="patches must be"):
        log_joint_fft(epitome.fields(3), torch.zeros(2, 1, 5, 5, dtype=torch.float64))


def test_cost_model_picks_fft_for_large_patches_and_direct_for_small():
    assert choose_method(1, 4, 299, 299, 31) == "fft"
    assert choose_method(1, 4, 299, 299, 11) == "fft"
    assert choose_method(1, 4, 512, 512, 7) == "direct"
    assert choose_method(1, 4, 299, 299, 1) == "direct"


def test_fields_are_built_once_per_parameter_update_without_gradients():
    epitome = random_epitome(1, 2, 9, 9)
    patches = torch.rand(3, 2, 3, 3, dtype=torch.float64)
    with torch.no_grad():
        fields = epitome.fields(3)
        assert epitome.fields(3) is fields and epitome.fields(5) is not fields
        before = log_joint(fields, patches)
        epitome.mean.add_(0.5)  # an in-place update (optimiser step, load_state_dict, copy_)
        updated = epitome.fields(3)
        assert updated is not fields
        expected = torch.from_numpy(brute_force_log_joint(epitome, patches))
        assert torch.allclose(log_joint(updated, patches), expected, atol=1e-9)
        assert not torch.allclose(log_joint(updated, patches), before)
    assert epitome.fields(3) is not epitome.fields(3)  # with autograd on: fresh, differentiable


def test_fields_cache_under_inference_mode_and_after_module_moves():
    epitome = random_epitome(1, 2, 9, 9)
    patches = torch.rand(3, 2, 5, 5, dtype=torch.float64)
    with torch.inference_mode():  # nothing cached, DFT matrices built outside inference mode
        inside = log_joint(epitome.fields(5), patches, method="fft")
    with torch.no_grad():
        fields = epitome.fields(5)
        assert torch.allclose(log_joint(fields, patches, method="fft"), inside)
    patches.requires_grad_()
    log_joint(epitome.fields(5), patches, method="fft").sum().backward()  # cached matrices usable by autograd
    assert patches.grad is not None
    epitome.float()  # a module move drops the cache
    with torch.no_grad():
        assert epitome.fields(5) is not fields and epitome.fields(5).weighted.dtype == torch.float32
    with torch.inference_mode():
        frozen = random_epitome(1, 2, 9, 9)  # inference tensors: no version counter to key a cache on
    with torch.no_grad():
        assert frozen.fields(3) is not frozen.fields(3)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_fft_paths_on_cuda_equal_cpu():
    from eolabels.epitome import cost_model

    epitome = random_epitome(2, 3, 40, 37, dtype=torch.float32)
    patches = torch.rand(5, 3, 15, 15)
    with torch.no_grad():
        expected = log_joint(epitome.fields(15), patches, method="direct")
        on_gpu = epitome.cuda()
        for blocked_from in (15, 10**6):  # the blocked height engine, then the w-tap one
            cost_model.BLOCKED_FFT_MIN_PATCH = blocked_from
            try:
                got = log_joint(on_gpu.fields(15), patches.cuda(), method="fft").cpu()
            finally:
                cost_model.BLOCKED_FFT_MIN_PATCH = 15
            assert torch.allclose(got, expected, rtol=1e-4, atol=1e-4 * float(expected.abs().max()))
