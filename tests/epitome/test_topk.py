"""Top-K posteriors over epitome positions (eolabels.epitome.topk): equal to the exact posterior when K
covers every position, the dropped mass on a case worked out by hand, bad input, and the switch in
self-epitomic LSR, label embedding and reconstruction."""

from __future__ import annotations

import logging
import math

import pytest
import torch

from eolabels.epitome.data import LabelledTile
from eolabels.epitome.lsr import embed_coarse_dataset, self_epitomic_lsr
from eolabels.epitome.model import GaussianEpitome, log_joint, posterior
from eolabels.epitome.patches import PatchOrigins, crop, sample_origins
from eolabels.epitome.reconstruct import reconstruct_tile
from eolabels.epitome.settings import EMSettings, EmbedSettings, ReconstructSettings, SelfEpitomicSettings
from eolabels.epitome.topk import (
    TOPK_GROUP,
    DroppedMassCheck,
    PosteriorSums,
    TopK,
    _row_topk_indices,
    approximate_posterior,
    candidates,
    coarse_log_joint,
    dropped_mass,
    topk_posterior,
)
from eolabels.epitome.transfer import LabelTransfer
from eolabels.epitome.variants import predict_self_epitomic


def general_epitome(seed: int = 0) -> GaussianEpitome:
    """2 layers, 3 channels on a 10×9 torus (not a multiple of the strides tested: blocks wrap and
    overlap), λ varying over positions and a non-uniform prior: the general path."""
    g = torch.Generator().manual_seed(seed)
    epitome = GaussianEpitome.initialise(2, 3, 10, 9, generator=g)
    with torch.no_grad():
        epitome.ivar.copy_(1 + 99 * torch.rand(epitome.ivar.shape, generator=g))
        epitome.prior_logits.copy_(torch.randn(epitome.prior_logits.shape, generator=g))
    return epitome


def self_epitome(seed: int = 0) -> GaussianEpitome:
    """The self-epitome of a random 11×13 image (λ constant: the constant-λ path)."""
    return GaussianEpitome.from_image(torch.rand(3, 11, 13, generator=torch.Generator().manual_seed(seed)))


def dense(positions: torch.Tensor, q: torch.Tensor, total: int) -> torch.Tensor:
    return torch.zeros(len(q), total, dtype=q.dtype).scatter_add_(1, positions, q)


@pytest.mark.parametrize("make", [general_epitome, self_epitome])
@pytest.mark.parametrize("stride", [1, 2, 3])
@torch.no_grad()
def test_posterior_is_the_exact_one_when_k_covers_every_position(make, stride):
    epitome = make().double()  # float64: the paths sum in different orders, compared without float32 rounding
    layers, channels, height, width = epitome.shape
    total = layers * height * width
    fields = epitome.fields(5)
    patches = torch.rand(6, channels, 5, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    exact = log_joint(fields, patches, method="direct")
    q_exact = posterior(exact.double(), 2.0).transpose(0, 1).reshape(6, -1)
    positions, q = topk_posterior(fields, patches, TopK(candidates=total, coarse_stride=stride), temperature=2.0)
    assert positions.shape == (6, total)
    assert torch.equal(positions.sort(1).values, torch.arange(total).expand(6, -1))  # each position once
    torch.testing.assert_close(dense(positions, q, total), q_exact, rtol=1e-9, atol=1e-12)
    # candidates carry the exact log joint, best first
    _, values = candidates(fields, patches, TopK(candidates=total, coarse_stride=stride))
    flat = exact.transpose(0, 1).reshape(6, -1)
    torch.testing.assert_close(values, flat.gather(1, positions), rtol=1e-9, atol=1e-9)
    assert bool((values[:, 1:] <= values[:, :-1]).all())
    assert float(dropped_mass(fields, patches, positions, 2.0).max()) < 1e-12


@pytest.mark.parametrize("make", [general_epitome, self_epitome])
@torch.no_grad()
def test_coarse_log_joint_is_the_exact_one_on_the_subgrid(make):
    epitome = make()
    fields = epitome.fields(3)
    patches = torch.rand(4, epitome.shape[1], 3, 3, generator=torch.Generator().manual_seed(2))
    exact = log_joint(fields, patches, method="direct")
    torch.testing.assert_close(coarse_log_joint(fields, patches, 4), exact[:, :, ::4, ::4], rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("stride", [1, 2])
@torch.no_grad()
def test_dropped_mass_of_a_hand_worked_case(stride):
    # one channel, 2×2 torus, μ = [[0, 1], [2, 3]], λ = 1, π = 0; a 1×1 patch x = 0:
    # log p(x, s) = −½ μ_s² + ½ log 1 + log ¼, so q(s) ∝ e^0, e^−½, e^−2, e^−4.5 (T = 1).
    # K = 2 keeps μ = 0 and μ = 1; the exact mass outside them is
    # (e^−2 + e^−4.5) / (1 + e^−½ + e^−2 + e^−4.5) = 0.14644428 / 1.75297494 = 0.08354043.
    # At T = 2 the weights are e^0, e^−¼, e^−1, e^−2.25: dropped 0.43175862 / 2.05449578 = 0.21015185.
    # (stride 2: the one subgrid point's 2×2 block is the whole torus, then the best 2 are kept.)
    mean = torch.tensor([[[[0.0, 1.0], [2.0, 3.0]]]])
    epitome = GaussianEpitome(mean, torch.ones_like(mean), torch.zeros(1, 2, 2))
    fields = epitome.fields(1)
    patch = torch.zeros(1, 1, 1, 1)
    approximation = TopK(candidates=2, coarse_stride=stride)
    positions, q = topk_posterior(fields, patch, approximation, temperature=1.0)
    assert positions.tolist() == [[0, 1]]
    torch.testing.assert_close(q, torch.tensor([[1 / (1 + math.exp(-0.5)), 1 / (1 + math.exp(0.5))]], dtype=torch.float64))
    assert float(dropped_mass(fields, patch, positions, 1.0)) == pytest.approx(0.08354043, abs=1e-7)
    positions, _ = topk_posterior(fields, patch, approximation, temperature=2.0)
    assert float(dropped_mass(fields, patch, positions, 2.0)) == pytest.approx(0.21015185, abs=1e-7)


@torch.no_grad()
def test_k_larger_than_the_positions_is_clamped():
    epitome = self_epitome()
    fields = epitome.fields(3)
    patches = torch.rand(2, 3, 3, 3, generator=torch.Generator().manual_seed(3))
    positions, q = topk_posterior(fields, patches, TopK(candidates=10_000, coarse_stride=2))
    assert positions.shape == (2, 11 * 13)
    torch.testing.assert_close(q.sum(1), torch.ones(2, dtype=torch.float64))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"candidates": 0}, "candidates must be >= 1"),
        ({"coarse_stride": 0}, "coarse_stride must be >= 1"),
        ({"check_patches": -1}, "check_patches must be >= 0"),
    ],
)
def test_bad_settings_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        TopK(**options)


def test_settings_switch():
    assert SelfEpitomicSettings().topk() is None  # exact stays the default
    settings = ReconstructSettings(posterior="topk", topk_candidates=32, topk_coarse_stride=3, topk_check_patches=8)
    assert settings.topk() == TopK(candidates=32, coarse_stride=3, check_patches=8)
    with pytest.raises(ValueError, match="posterior must be one of"):
        EmbedSettings(patch_size=3, samples=8, posterior="approximate")


def lsr_inputs():
    g = torch.Generator().manual_seed(4)
    image = torch.nn.functional.interpolate(torch.rand(1, 3, 4, 4, generator=g), size=(12, 12), mode="bilinear")[0]
    slots = torch.arange(3).repeat_interleave(4)[:, None].expand(12, 12).contiguous()
    table = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6]], dtype=torch.float64)
    return image, slots, table


def test_self_epitomic_lsr_with_every_position_a_candidate_is_the_exact_lsr():
    image, slots, table = lsr_inputs()
    options = {"patch_size": 3, "samples": 256, "batch_size": 32, "iterations": 5}
    exact = self_epitomic_lsr(image, slots, table, generator=torch.Generator().manual_seed(0), **options)
    dropped = []
    approximate = self_epitomic_lsr(
        image, slots, table, generator=torch.Generator().manual_seed(0), topk=TopK(144, 2, 16), dropped=dropped,
        **options,
    )
    torch.testing.assert_close(approximate, exact, rtol=1e-4, atol=1e-6)
    assert len(dropped) == 1 and dropped[0].patches == 16 and dropped[0].maximum < 1e-6


@torch.no_grad()
def test_self_epitomic_lsr_reports_what_a_small_k_drops():
    image, slots, table = lsr_inputs()
    dropped = []
    approximation = TopK(4, 2, 8)
    self_epitomic_lsr(
        image, slots, table, patch_size=3, samples=64, batch_size=32, iterations=2, topk=approximation,
        dropped=dropped, generator=torch.Generator().manual_seed(0),
    )
    # one pass joins both batches of 32 (as sampled on the exact path) and orders them by coarse slot;
    # the check takes every 8th of those 64 patches: redo it by hand
    generator = torch.Generator().manual_seed(0)
    origins = PatchOrigins.joined([sample_origins([(12, 12)], 3, 32, generator) for _ in range(2)])
    rows, cols = origins.centres()
    patches = crop([image], origins[torch.argsort(slots[rows, cols], stable=True)])[::8]
    fields = GaussianEpitome.from_image(image).fields(3)
    q = posterior(log_joint(fields, patches, method="direct").double(), temperature=9.0)  # T = w²
    kept, _ = candidates(fields, patches, approximation)
    expected = 1 - q.transpose(0, 1).reshape(8, -1).gather(1, kept).sum(1)
    assert dropped[0].patches == 8
    assert dropped[0].mean == pytest.approx(float(expected.mean()), abs=1e-5)
    assert dropped[0].maximum == pytest.approx(float(expected.max()), abs=1e-5)
    assert 0 < dropped[0].mean < 1


@torch.no_grad()
def test_embedding_with_every_position_a_candidate_is_the_exact_embedding():
    epitome = general_epitome()
    image, slots, _ = lsr_inputs()
    options = {"num_slots": 3, "patch_size": 3, "samples": 64, "batch_size": 32, "temperature": 4.0}
    exact = embed_coarse_dataset(epitome, [image], [slots], generator=torch.Generator().manual_seed(0), **options)
    approximate = embed_coarse_dataset(
        epitome, [image], [slots], generator=torch.Generator().manual_seed(0), topk=TopK(180, 3), **options
    )
    torch.testing.assert_close(approximate, exact, rtol=1e-4, atol=1e-6)


@torch.no_grad()
def test_reconstruction_with_a_peaked_posterior_matches_the_exact_one():
    # a self-epitome with λ = 10⁴ puts all posterior mass (T = 1) on each window's own position,
    # so every draw is that position, exact or top-K: the scores are equal (stride 1: the subgrid is
    # every position; on this rough random image a coarser one may miss the peak — the check says so)
    image = torch.rand(3, 12, 12, generator=torch.Generator().manual_seed(5))
    epitome = GaussianEpitome.from_image(image, ivar=1e4)
    label_probs = torch.softmax(torch.randn(4, 1, 12, 12, generator=torch.Generator().manual_seed(6)), 0)
    options = {"patch_size": 3, "stride": 3, "samples": 2, "temperature": 1.0}
    exact = reconstruct_tile(epitome, image, label_probs, generator=torch.Generator().manual_seed(0), **options)
    dropped = []
    approximate = reconstruct_tile(
        epitome, image, label_probs, generator=torch.Generator().manual_seed(0), topk=TopK(8, 1, 4),
        dropped=dropped, **options,
    )
    torch.testing.assert_close(approximate, exact)
    assert dropped[0].patches == 4 and dropped[0].maximum < 1e-6


def test_the_stage_logs_the_dropped_mass_per_tile(caplog):
    image, slots, table = lsr_inputs()
    tile = LabelledTile("t0", image, slots + 11, slots, grid=None)  # coarse codes 11, 12, 13
    transfer = LabelTransfer(table.float(), (11, 12, 13), "lsr4", "hand")
    settings = SelfEpitomicSettings(patch_size=3, samples=64, batch_size=32, posterior="topk", topk_check_patches=8)
    with caplog.at_level(logging.INFO, logger="eolabels.epitome.variants"):
        maps = predict_self_epitomic([tile], transfer, settings, EMSettings(iterations=2), seed=0)
    assert maps[0].shape == (12, 12)
    assert "self-epitomic LSR of tile t0: top-K posterior drops exact mass mean" in caplog.text
    assert "(over 8 patches)" in caplog.text


def hand_tail_case() -> tuple:
    """One channel on a 2×4 torus, λ = 1, π uniform, a 1×1 patch x = 0 (T = 1):
    log p(x, s) = −½ μ_s² + const, μ = [[0, 1, 2, 1], [1, 2, 3, 2]]."""
    mean = torch.tensor([[[[0.0, 1.0, 2.0, 1.0], [1.0, 2.0, 3.0, 2.0]]]])
    epitome = GaussianEpitome(mean, torch.ones_like(mean), torch.zeros(1, 2, 4))
    return epitome.fields(1), torch.zeros(1, 1, 1, 1)


@torch.no_grad()
def test_tail_posterior_of_a_hand_worked_case():
    # stride 2: subgrid points (0, 0) (μ = 0, weight 1) and (0, 2) (μ = 2, weight e^−2); block (0, 0)
    # owns rows {1, 0} × columns {3, 0}, block (0, 1) rows {1, 0} × columns {1, 2}.  K = 1 refines
    # the better block (0, 0) exactly: weights e^−½ (0,3), 1 (0,0), e^−2 (1,3), e^−½ (1,0).  Block
    # (0, 1) is the tail: 4 positions × e^−2.  Z = 1 + 2e^−½ + 5e^−2 = 2.88973774, so
    # q(0,0) = 0.34605217, q(0,3) = q(1,0) = e^−½/Z = 0.20989125, q(1,3) = e^−2/Z = 0.04683307 and
    # each tail position e^−2/Z = 0.04683307 (the tail's mass 4e^−2/Z = 0.18733227).
    fields, patch = hand_tail_case()
    approximate = approximate_posterior(fields, patch, TopK(candidates=1, coarse_stride=2), temperature=1.0)
    expected = torch.tensor([[0.34605217, 0.04683307, 0.04683307, 0.20989125,
                              0.20989125, 0.04683307, 0.04683307, 0.04683307]], dtype=torch.float64)
    torch.testing.assert_close(approximate.dense(), expected, rtol=0, atol=1e-8)
    assert sorted(approximate.positions[0].tolist()) == [0, 3, 4, 7]
    assert float(approximate.tail_mass().sum()) == pytest.approx(0.18733227, abs=1e-8)
    # the exact posterior: Z' = 1 + 3e^−½ + 3e^−2 + e^−4.5 = 3.23670683; the tail block holds
    # (e^−½ + 2e^−2 + e^−4.5)/Z' = 0.27444877 (dropped by the candidates), and the total variation
    # ½ Σ|q' − q| = Σ_{q > q'} (q − q') = 0.14055822
    check = DroppedMassCheck(1)
    check.add(fields, patch, approximate, 1.0)
    report = check.report()
    assert report.mean == pytest.approx(0.27444877, abs=1e-6)
    assert report.variation_mean == pytest.approx(0.14055822, abs=1e-6)
    assert "total variation mean 0.1406" in str(report)
    # lrmap of class 1 gets the whole approximate posterior (the tail spread over its block)
    lrmap = torch.zeros(2, 1, 2, 4, dtype=torch.float64)
    sums = PosteriorSums(lrmap)
    sums.add(torch.tensor([1]), approximate)
    sums.finish()
    torch.testing.assert_close(lrmap[1].flatten(), expected[0], rtol=0, atol=1e-8)
    assert float(lrmap[0].abs().sum()) == 0.0


@torch.no_grad()
def test_tail_draws_follow_the_approximate_posterior():
    fields, patch = hand_tail_case()
    approximate = approximate_posterior(fields, patch.expand(4, -1, -1, -1), TopK(1, 2), temperature=1.0)
    draws = approximate.sample(5000, torch.Generator().manual_seed(0))
    frequency = torch.bincount(draws.flatten(), minlength=8).double() / draws.numel()
    torch.testing.assert_close(frequency, approximate.dense()[0], rtol=0, atol=0.01)


@pytest.mark.parametrize(("make", "stride"), [(general_epitome, 3), (self_epitome, 4), (self_epitome, 2)])
@torch.no_grad()
def test_tail_posterior_from_its_definition(make, stride):
    # sides not multiples of the stride (blocks of several sizes) and λ varying: every block not
    # refined carries n_a · exp(log p(x, s_a)/T), the refined ones the exact log joint, all normalised
    epitome = make()
    _, channels, height, width = epitome.shape
    fields = epitome.fields(3)
    patches = torch.rand(5, channels, 3, 3, generator=torch.Generator().manual_seed(7))
    temperature, approximation = 3.0, TopK(candidates=2 * stride * stride, coarse_stride=stride)
    exact = log_joint(fields, patches, method="direct").double().transpose(0, 1) / temperature  # B×L×H×W
    exact = exact - exact.amax((1, 2, 3), keepdim=True)  # a shift per patch, for the exp
    rows, cols = torch.arange(height), torch.arange(width)
    owner_row, owner_col = (rows + stride // 2) % height // stride, (cols + stride // 2) % width // stride
    grid = exact[:, :, ::stride, ::stride]  # B×L×Hc×Wc
    sizes = torch.bincount(owner_row)[:, None] * torch.bincount(owner_col)[None, :]
    best = grid.reshape(5, -1).topk(2, dim=1).indices  # the 2 = ⌈K/f²⌉ best subgrid points are refined
    refined = torch.zeros(grid.numel() // 5, dtype=torch.bool).expand(5, -1).scatter(1, best, True).view_as(grid)
    weights = torch.where(refined, 0.0, sizes * grid.exp())  # tail weight of each block
    per_position = (weights / sizes)[:, :, owner_row][:, :, :, owner_col]
    exact_part = torch.where(refined[:, :, owner_row][:, :, :, owner_col], exact.exp(), 0.0)
    expected = (per_position + exact_part).reshape(5, -1)
    expected = expected / expected.sum(1, keepdim=True)
    approximate = approximate_posterior(fields, patches, approximation, temperature)
    torch.testing.assert_close(approximate.dense(), expected, rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(approximate.dense().sum(1), torch.ones(5, dtype=torch.float64))


@torch.no_grad()
def test_a_known_peak_gives_the_same_tail_posterior():
    # patches cut from a self-epitome's image peak at the fields' bound (their own position): the
    # tempering and shift folded into the coarse product give the posterior of the per-patch shift
    image = torch.nn.functional.interpolate(
        torch.rand(1, 3, 4, 4, generator=torch.Generator().manual_seed(8)), size=(16, 16), mode="bilinear"
    )[0]
    fields = GaussianEpitome.from_image(image).fields(3)
    patches = crop([image], sample_origins([(16, 16)], 3, 6, torch.Generator().manual_seed(9)))
    approximation = TopK(candidates=8, coarse_stride=4)
    shifted = approximate_posterior(fields, patches, approximation, 9.0)
    folded = approximate_posterior(fields, patches, approximation, 9.0, peak=fields.log_joint_bound)
    assert float(shifted.tail_mass().sum(1).min()) > 0.01  # the tail carries mass here
    torch.testing.assert_close(folded.dense(), shifted.dense(), rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize(("length", "count"), [(TOPK_GROUP * 40, 9), (TOPK_GROUP * 40 - 5, 9), (37, 2), (17, 1)])
def test_row_topk_indices_are_the_largest_entries(length, count):
    # two stages (count · TOPK_GROUP < length), rows padded to a multiple of the group size (up to
    # more padding than groups); distinct values: the k largest of a row are one set, in any order
    assert count * TOPK_GROUP < length
    values = torch.randperm(6 * length, generator=torch.Generator().manual_seed(length)).float().view(6, length)
    found = _row_topk_indices(values, count)
    assert found.sort(1).values.tolist() == values.topk(count, dim=1).indices.sort(1).values.tolist()


def test_row_topk_indices_with_ties_are_distinct_and_among_the_largest():
    values = torch.tensor([[0.0, 3.0, 1.0, 3.0] * 20 + [2.0]])  # 40 entries tie at the largest
    found = _row_topk_indices(values, 3)[0]
    assert len(set(found.tolist())) == 3 and bool((values[0, found] == 3.0).all())


@torch.no_grad()
def test_posterior_sums_add_each_patch_to_its_class_in_any_order():
    epitome = general_epitome()
    fields = epitome.fields(3)
    patches = torch.rand(5, 3, 3, 3, generator=torch.Generator().manual_seed(1))
    approximate = approximate_posterior(fields, patches, TopK(candidates=6, coarse_stride=2), temperature=4.0)
    classes = torch.tensor([2, 0, 2, 1, 0])  # runs of equal classes repeat
    lrmap = torch.zeros(3, *epitome.shape[:1], *epitome.shape[2:], dtype=torch.float64)
    sums = PosteriorSums(lrmap)
    sums.add(classes, approximate)
    sums.finish()
    dense = approximate.dense()
    for label in range(3):
        torch.testing.assert_close(lrmap[label].flatten(), dense[classes == label].sum(0), rtol=1e-5, atol=1e-7)
