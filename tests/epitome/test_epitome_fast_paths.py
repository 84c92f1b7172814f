"""Fast exact paths of the log joint, the fused posterior accumulation and the factorised LSR EM,
each against a brute-force / literal reference on small shapes (issue 5: values equal to 1e-4)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from epitome_reference import brute_force

from eolabels.epitome.dft import inverse_row_dft
from eolabels.epitome.embed import accumulate_coarse_posteriors, embed_coarse_labels
from eolabels.epitome import cost_model
from eolabels.epitome.cost_model import choose_method, fft_size_penalty, pocketfft_size_penalty, row_fft_length
from eolabels.epitome.fields import EpitomeFields, constant_ivar
from eolabels.epitome.lsr import embed_coarse_dataset, lsr_em, self_epitomic_lsr
from eolabels.epitome.model import GaussianEpitome, log_joint, posterior, resolve_method


def epitome_with(ivar_kind: str, layers=2, channels=3, height=9, width=10, seed=0) -> GaussianEpitome:
    g = torch.Generator().manual_seed(seed)
    mean = torch.rand(layers, channels, height, width, generator=g)
    if ivar_kind == "varying":
        ivar = 1 + 99 * torch.rand(layers, channels, height, width, generator=g)
    else:  # constant over positions, different per layer and channel
        per_plane = 1 + 99 * torch.rand(layers, channels, 1, 1, generator=g)
        ivar = per_plane.expand(layers, channels, height, width).clone()
    return GaussianEpitome(mean, ivar, torch.randn(layers, height, width, generator=g))


# (height, width, patch side): W = 10, 8, 15, 12, 7 are fast DFT sizes (circular row DFT of length W),
# W = 11 is circular only where pocketfft runs the inverse (no gradient, CPU), W = 13 never (linear
# correlation of the circularly extended row, n ≥ W + 2p).
SHAPES = [(9, 10, 5), (6, 8, 1), (7, 15, 7), (12, 12, 3), (9, 11, 5), (5, 13, 3), (8, 7, 7)]


@pytest.fixture(params=["w-tap product", "blocked"])
def height_engine(request, monkeypatch):
    """Run the FFT paths with either height engine on every shape (the blocked one normally starts
    at w = 15: here at any w, so the small shapes below exercise it, including L > 1 and W not a
    fast DFT size)."""
    monkeypatch.setattr(cost_model, "BLOCKED_FFT_MIN_PATCH", 1 if request.param == "blocked" else 10**6)
    return request.param


@pytest.mark.parametrize("height,width,size", SHAPES)
@pytest.mark.parametrize("method", ["fft", "constant_ivar", "constant_ivar_fft"])
def test_fast_paths_match_brute_force(height, width, size, method, height_engine):
    kind = "varying" if method == "fft" else "constant"
    epitome = epitome_with(kind, height=height, width=width)
    patches = torch.rand(5, 3, size, size, generator=torch.Generator().manual_seed(1))
    expected = brute_force(epitome.mean, epitome.ivar, epitome.prior_logits, patches)
    with torch.no_grad():
        got = log_joint(epitome.fields(size), patches, method=method).numpy()
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


@pytest.mark.parametrize("height,width,size", SHAPES)
def test_fast_paths_equal_direct_in_float64(height, width, size, height_engine):
    epitome = epitome_with("constant", height=height, width=width)
    epitome = GaussianEpitome(epitome.mean.double(), epitome.ivar.double(), epitome.prior_logits.double())
    patches = torch.rand(4, 3, size, size, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    with torch.no_grad():
        fields = epitome.fields(size)
        assert fields.blocked(patches) == (height_engine == "blocked")
        direct = log_joint(fields, patches, method="direct")
        for method in ("fft", "constant_ivar", "constant_ivar_fft", "auto"):
            assert torch.allclose(log_joint(fields, patches, method=method), direct, rtol=1e-10, atol=1e-9)
        varying = epitome_with("varying", height=height, width=width).double()
        assert torch.allclose(
            log_joint(varying.fields(size), patches, "fft"), log_joint(varying.fields(size), patches, "direct"),
            rtol=1e-10, atol=1e-9,
        )


@pytest.mark.parametrize("method", ["direct", "fft", "constant_ivar", "constant_ivar_fft"])
def test_scale_and_shift_are_folded_into_every_path(method, height_engine):
    epitome = epitome_with("constant", layers=2, height=9, width=11).double()
    patches = torch.rand(4, 3, 5, 5, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    with torch.no_grad():
        fields = epitome.fields(5)
        plain = log_joint(fields, patches, method=method)
        folded = log_joint(fields, patches, method=method, scale=1 / 7.0, shift=-3.25)
    assert torch.allclose(folded, plain / 7.0 - 3.25, rtol=1e-12, atol=1e-10)


def test_log_joint_bound_is_attained_by_patches_cut_from_a_self_epitome():
    image = torch.rand(3, 12, 14, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    epitome = GaussianEpitome.from_image(image)
    fields = epitome.fields(5)
    with torch.no_grad():
        cut = image[:, 3:8, 6:11].unsqueeze(0)  # centred on pixel (5, 8)
        values = log_joint(fields, torch.cat([cut, torch.rand(2, 3, 5, 5, dtype=torch.float64)]), "direct")
    # ½ w² Σ_c log λ_c + log(1/(H·W)) by hand, λ = 100 on 3 channels
    assert fields.log_joint_bound == pytest.approx(0.5 * 25 * 3 * np.log(100.0) - np.log(12 * 14))
    assert float(values.max()) <= fields.log_joint_bound + 1e-9
    assert float(values[0, 0, 5, 8]) == pytest.approx(fields.log_joint_bound, abs=1e-9)


def test_fused_accumulation_with_a_known_peak_equals_searching_for_it():
    epitome = epitome_with("varying", layers=2, height=10, width=12)
    patches = torch.rand(5, 3, 5, 5, generator=torch.Generator().manual_seed(8))
    classes = torch.tensor([0, 0, 2, 4, 4])
    with torch.no_grad():
        fields = epitome.fields(5)
        energies = log_joint(fields, patches, method="fft")
        bound = fields.log_joint_bound
        expected = accumulate_coarse_posteriors(energies.clone(), classes, torch.zeros(5, 2, 10, 12), 3.0)
        tempered = log_joint(fields, patches, method="fft", scale=1 / 3.0, shift=-bound / 3.0)
        got = accumulate_coarse_posteriors(tempered, classes, torch.zeros(5, 2, 10, 12), 1.0, peak=0.0)
        peaked = accumulate_coarse_posteriors(energies.clone(), classes, torch.zeros(5, 2, 10, 12), 3.0, peak=bound)
    assert torch.allclose(got, expected, rtol=1e-4, atol=1e-6)
    assert torch.allclose(peaked, expected, rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="underflowed"):  # a "peak" far above the log joint
        accumulate_coarse_posteriors(energies.clone(), classes, torch.zeros(5, 2, 10, 12), 1.0, peak=bound + 1e4)


def test_fft_path_gradients_match_direct_with_circular_and_linear_rows(monkeypatch):
    monkeypatch.setattr(cost_model, "BLOCKED_FFT_MIN_PATCH", 1)  # with a gradient the w-tap engine runs regardless
    for width in (16, 13):  # 16: circular row DFT; 13: linear
        epitome = epitome_with("varying", layers=1, channels=2, height=11, width=width)
        patches = torch.rand(3, 2, 5, 5, generator=torch.Generator().manual_seed(3))
        grads = {}
        for method in ("direct", "fft"):
            epitome.zero_grad()
            torch.logsumexp(log_joint(epitome.fields(5), patches, method=method).flatten(), 0).backward()
            grads[method] = [p.grad.clone() for p in epitome.parameters()]
        for a, b in zip(grads["direct"], grads["fft"]):
            assert torch.allclose(a, b, rtol=1e-3, atol=1e-4 * a.abs().max())


def test_constant_ivar_is_detected_only_when_exact_and_gradient_free():
    constant = epitome_with("constant")
    with torch.no_grad():
        found = constant_ivar(constant.ivar)
        assert found is not None and found.shape == (2, 3)
        assert torch.equal(found, constant.ivar[:, :, 0, 0])
        assert constant_ivar(epitome_with("varying").ivar) is None
    assert constant_ivar(constant.ivar) is None  # λ requires a gradient: the specialisation is off
    fields = constant.fields(3)
    with pytest.raises(ValueError, match="constant_ivar"):
        log_joint(fields, torch.rand(2, 3, 3, 3), method="constant_ivar")


def test_auto_takes_the_constant_ivar_paths_for_a_self_epitome():
    assert choose_method(1, 4, 512, 512, 7, constant_ivar=True).startswith("constant_ivar")
    assert choose_method(1, 4, 299, 299, 31, constant_ivar=True) == "constant_ivar_fft"
    assert choose_method(1, 4, 299, 299, 31) == "fft"


@pytest.mark.parametrize(
    "side,size,constant,expected",
    [  # no-gradient timings on the bench machine (ms, B = 256 or 64): the faster path is expected
        (299, 3, False, "fft"),  # direct 111, fft 75
        (299, 7, False, "fft"),  # direct 181, fft 74
        (299, 1, False, "fft"),  # direct 98, fft 48
        (128, 3, False, "direct"),  # direct 9.7, fft 13.8
        (64, 3, False, "direct"),  # direct 0.35, fft 0.75
        (512, 9, True, "constant_ivar_fft"),  # convolution 73, fft 48
        (256, 5, True, "constant_ivar"),  # convolution 5.3, fft 13.1
    ],
)
def test_auto_without_gradient_weighs_for_pocketfft(side, size, constant, expected):
    assert choose_method(1, 4, side, side, size, constant_ivar=constant, pocketfft=True) == expected


def test_auto_weighs_for_the_backend_that_inverts():
    generator = torch.Generator().manual_seed(0)
    epitome = GaussianEpitome.initialise(1, 4, 128, generator=generator)
    with torch.no_grad():
        epitome.ivar.copy_(1 + 99 * torch.rand(epitome.ivar.shape, generator=generator))
    fields = epitome.fields(5)
    assert fields.product_matrix_elements < cost_model.GRAD_FFT_MAX_MATRIX_ELEMENTS  # not the gradient guard:
    assert resolve_method(fields) == "direct"  # with a gradient, MKL's weights pick direct
    with torch.no_grad():  # 128², w = 5, B = 256 without a gradient: direct 20 ms, fft 15 ms
        assert resolve_method(epitome.fields(5)) == "fft"


def test_row_fft_length_is_fast_and_long_enough():
    assert row_fft_length(512, 7) == 512  # circular on the torus
    for width, size in [(299, 11), (299, 31), (13, 5), (7, 7)]:
        for pocketfft in (False, True):
            n = row_fft_length(width, size, pocketfft=pocketfft)
            assert n == width or n >= width + 2 * (size // 2)
            assert fft_size_penalty(n) is not None or pocketfft
    assert fft_size_penalty(320) == 1.0 and fft_size_penalty(315) == 1.25 and fft_size_penalty(299) is None


def test_pocketfft_lengths_take_the_circular_torus_where_it_pays():
    assert [pocketfft_size_penalty(n) for n in (320, 315, 299, 341, 307, 1021)] == [1.0, 1.25, 1.6, 1.6, 4.5, 4.5]
    # 31×31 on a 299² epitome: 150 frequencies of a 299-point inverse (13·23) beat 169 of 336
    assert row_fft_length(299, 31, pocketfft=True) == 299 and row_fft_length(299, 31) == 336
    assert row_fft_length(299, 11, pocketfft=True) == 320  # 161 frequencies of 320 beat 150 of 299
    assert row_fft_length(307, 7, pocketfft=True) != 307  # a prime: Bluestein, never worth it


def test_fields_pick_the_row_length_of_the_backend_that_inverts():
    epitome = GaussianEpitome.initialise(1, 4, 299, generator=torch.Generator().manual_seed(0))
    assert EpitomeFields(*epitome.parameters(), 31).fft_length == 336  # gradient: torch's MKL inverse
    with torch.no_grad():
        assert EpitomeFields(*epitome.parameters(), 31).fft_length == 299  # no gradient: pocketfft


@pytest.mark.parametrize(
    "classes",
    [[0, 3, 3, 1, 0, 3], [0, 0, 1, 3, 3, 3], [4], [0, 1, 2, 3, 4, 0]],  # runs ≤ K, grouped, a batch of 1, runs > K
)
def test_fused_accumulation_per_class_runs_equal_the_one_hot_product(classes):
    epitome = epitome_with("varying", layers=2, height=10, width=12)
    patches = torch.rand(len(classes), 3, 5, 5, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        energies = log_joint(epitome.fields(5), patches, method="fft")  # patches in rows
        expected = embed_coarse_labels(posterior(energies, 3.0).double(), torch.tensor(classes), 5)
        for dtype in (torch.float32, torch.float64):
            lrmap = torch.ones(5, 2, 10, 12, dtype=dtype)
            accumulate_coarse_posteriors(energies.clone(), torch.tensor(classes), lrmap, 3.0)
            assert torch.allclose(lrmap.double() - 1, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("bad", [[0, -1, 1], [0, 5, 1]])
def test_fused_accumulation_refuses_classes_outside_the_lrmap(bad):
    energies = torch.randn(1, 3, 4, 4)
    with pytest.raises(ValueError, match="centre classes"):
        accumulate_coarse_posteriors(energies, torch.tensor(bad), torch.zeros(5, 1, 4, 4))


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("method", ["direct", "fft", "constant_ivar", "constant_ivar_fft"])
def test_fused_accumulation_equals_posterior_embedding(layers, method, height_engine):
    epitome = epitome_with("constant", layers=layers, height=10, width=12)
    patches = torch.rand(6, 3, 5, 5, generator=torch.Generator().manual_seed(4))
    classes = torch.tensor([0, 3, 3, 1, 0, 3])
    with torch.no_grad():
        energies = log_joint(epitome.fields(5), patches, method=method)
        expected = embed_coarse_labels(posterior(energies, 7.0).double(), classes, 5)
        lrmap = torch.ones(5, layers, 10, 12, dtype=torch.float64)
        accumulate_coarse_posteriors(energies.clone(), classes, lrmap, 7.0, overwrite_input=True)
    assert torch.allclose(lrmap - 1, expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(
    "options", [{}, {"weight_by_class_frequency": True}, {"restrict_to_present_classes": True}]
)
def test_factorised_em_equals_the_literal_loop(options):
    g = torch.Generator().manual_seed(5)
    lrmap = torch.rand(6, 2, 7, 8, generator=g, dtype=torch.float64) ** 6
    lrmap[2] = 0  # a class absent from the tile
    table = torch.rand(6, 4, generator=g, dtype=torch.float64)
    table[0] = 0  # a no-data row
    fast = lsr_em(lrmap, table, generator=torch.Generator().manual_seed(6), **options)
    literal = lsr_em(lrmap, table, generator=torch.Generator().manual_seed(6), factorised=False, **options)
    assert torch.allclose(fast, literal, rtol=1e-12, atol=1e-14)


def test_self_epitomic_lsr_fast_equals_direct_formulation():
    g = torch.Generator().manual_seed(7)
    image = torch.nn.functional.interpolate(torch.rand(1, 3, 6, 6, generator=g), size=(24, 24), mode="bilinear")[0]
    slots = torch.randint(4, (24, 24), generator=g)
    table = torch.rand(4, 3, generator=g, dtype=torch.float64)
    runs = {
        (method, reference): self_epitomic_lsr(
            image, slots, table, samples=96, batch_size=32, generator=torch.Generator().manual_seed(8),
            method=method, reference_accumulation=reference,
        )
        for method, reference in [("direct", True), ("auto", False), ("constant_ivar_fft", False), ("fft", True)]
    }
    reference = runs[("direct", True)]
    for result in runs.values():
        assert torch.allclose(result, reference, rtol=1e-4, atol=1e-6)


def test_embed_coarse_dataset_fused_equals_reference():
    epitome = epitome_with("varying", layers=2, height=11, width=10)
    g = torch.Generator().manual_seed(9)
    images = [torch.rand(3, 16, 14, generator=g), torch.rand(3, 12, 18, generator=g)]
    slots = [torch.randint(5, image.shape[-2:], generator=g) for image in images]
    results = [
        embed_coarse_dataset(
            epitome, images, slots, 5, 5, samples=64, batch_size=16, generator=torch.Generator().manual_seed(10),
            method=method, reference_accumulation=reference,
        )
        for method, reference in [("direct", True), ("direct", False), ("fft", False)]
    ]
    assert torch.allclose(results[1], results[0], rtol=1e-5, atol=1e-7)  # the fused accumulation
    # the FFT log joint's float32 rounding, amplified by T = (5/11)²: within 1e-4 of the largest count
    assert torch.allclose(results[2], results[0], rtol=0, atol=1e-4 * float(results[0].max()))


def test_inverse_row_dft_equals_torch_irfft_on_strided_input_and_keeps_gradients():
    g = torch.Generator().manual_seed(7)
    spectrum = torch.randn(6, 4, 5, dtype=torch.complex64, generator=g).permute(1, 2, 0)  # strided, G = 6
    for length in (10, 11):  # even and odd n share G = n // 2 + 1
        expected = torch.fft.irfft(spectrum, n=length, dim=-1)
        got = inverse_row_dft(spectrum, length)
        assert got.dtype == torch.float32 and got.shape == (4, 5, length)
        assert torch.allclose(got, expected, atol=1e-6)
    leaf = spectrum.detach().clone().requires_grad_()
    inverse_row_dft(leaf, 10).square().sum().backward()  # autograd path: torch's own irfft
    assert leaf.grad is not None and leaf.grad.shape == leaf.shape


def test_blocked_height_engine_only_for_large_patches_without_gradients():
    epitome = epitome_with("varying", layers=1, channels=2, height=40, width=40)
    small, large = torch.rand(2, 2, 13, 13), torch.rand(2, 2, 15, 15)
    with torch.no_grad():
        assert not epitome.fields(13).blocked(small) and epitome.fields(15).blocked(large)
    assert not epitome.fields(15).blocked(large)  # the parameters require a gradient
    plan = epitome.fields(15).block_plan  # s = 8 taps in q = 2 blocks, tiles of 8 rows, F = 15
    assert (plan.taps, plan.blocks, plan.tile, plan.length, plan.tiles, plan.windows) == (8, 2, 8, 15, 5, 6)


def test_auto_keeps_gradient_steps_off_the_fft_path_when_its_matrices_are_large():
    large = GaussianEpitome.initialise(1, 4, 299)  # 161·2·(8·11 + 1)·2·299 = 17,137,484 elements at w = 11
    small = GaussianEpitome.initialise(1, 4, 128)  # 65·2·(8·15 + 1)·2·128 = 4,026,880 at w = 15
    assert large.fields(11).product_matrix_elements == 161 * 2 * 89 * 2 * 299 > cost_model.GRAD_FFT_MAX_MATRIX_ELEMENTS
    assert resolve_method(large.fields(11)) == "direct"  # a training step
    assert resolve_method(small.fields(15)) == "fft"
    with torch.no_grad():
        large.ivar.uniform_(1, 100)  # λ varying over positions: no constant-λ shortcut
        assert resolve_method(large.fields(11)) == "fft"  # inference: the FFT path as the cost model says
