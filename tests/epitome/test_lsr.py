"""LSR EM (spec §6, §12.5), self-epitomic LSR (§7, §12.6) and colour-mixture LSR (§8)."""

from __future__ import annotations

import pytest
import torch

from eolabels.epitome.lsr import coarse_slots, colour_mixture_lsr, lsr_em, naive_labels, self_epitomic_lsr

COLOURS = torch.tensor([[0.1, 0.2, 0.6], [0.1, 0.5, 0.1], [0.6, 0.6, 0.2], [0.5, 0.5, 0.5]])
# Coarse kinds → fine-class mixtures: "water-ish", "forest", "developed" (an even field/impervious mix).
MIXTURES = torch.tensor([[0.8, 0.0, 0.2, 0.0], [0.0, 0.8, 0.2, 0.0], [0.0, 0.0, 0.5, 0.5]])


def synthetic_tile(seed: int, height: int = 64, width: int = 64, block: int = 16, cell: int = 8):
    """Fine classes in cell×cell squares drawn from the block's coarse-kind mixture; colours are
    class-determined plus noise; the coarse map is the block's kind; p(ℓ|c) is the true mixture."""
    g = torch.Generator().manual_seed(seed)
    kinds = torch.randint(3, (height // block, width // block), generator=g)
    cells_per_block = (block // cell) ** 2
    fine = torch.empty(height, width, dtype=torch.long)
    for bi in range(height // block):
        for bj in range(width // block):
            cells = torch.multinomial(MIXTURES[kinds[bi, bj]], cells_per_block, replacement=True, generator=g)
            square = cells.view(block // cell, block // cell)
            square = square.repeat_interleave(cell, 0).repeat_interleave(cell, 1)
            fine[bi * block : (bi + 1) * block, bj * block : (bj + 1) * block] = square
    image = COLOURS[fine].permute(2, 0, 1) + 0.03 * torch.randn(3, height, width, generator=g)
    coarse = kinds.repeat_interleave(block, 0).repeat_interleave(block, 1)
    return image, fine, coarse


def concentrated_lrmap(classes: int, positions: int, seed: int = 0):
    """Positions split into ``classes`` groups; group c is visited (almost) only by coarse class c."""
    g = torch.Generator().manual_seed(seed)
    group = torch.arange(positions) % classes
    lrmap = 0.01 * torch.rand(classes, positions, generator=g, dtype=torch.float64)
    lrmap[group, torch.arange(positions)] += 1 + torch.rand(positions, generator=g, dtype=torch.float64)
    return lrmap, group


def test_em_with_identity_table_returns_identity_labelling():
    lrmap, group = concentrated_lrmap(4, 40)
    result = lsr_em(lrmap, torch.eye(4, dtype=torch.float64), generator=torch.Generator().manual_seed(0))
    assert result.shape == (40, 4)
    assert torch.allclose(result.sum(1), torch.ones(40, dtype=torch.float64))
    assert torch.equal(result.argmax(1), group)


def test_em_is_invariant_to_permuting_coarse_classes():
    lrmap, _ = concentrated_lrmap(5, 30, seed=1)
    table = torch.rand(5, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    order = torch.tensor([3, 0, 4, 2, 1])
    a = lsr_em(lrmap, table, generator=torch.Generator().manual_seed(7))
    b = lsr_em(lrmap[order], table[order], generator=torch.Generator().manual_seed(7))
    assert torch.allclose(a, b, rtol=1e-10, atol=1e-14)


def test_em_keeps_spatial_shape_and_handles_flags():
    lrmap = torch.rand(3, 2, 4, 5, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    lrmap[1] = 0  # an absent coarse class
    table = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.5, 0.5]], dtype=torch.float64)
    default = lsr_em(lrmap, table, generator=torch.Generator().manual_seed(0))
    assert default.shape == (2, 4, 5, 2)
    restricted = lsr_em(
        lrmap, table, restrict_to_present_classes=True, generator=torch.Generator().manual_seed(0)
    )
    without_row = lsr_em(lrmap[[0, 2]], table[[0, 2]], generator=torch.Generator().manual_seed(0))
    assert torch.allclose(restricted, without_row)
    assert not torch.allclose(restricted, default)  # the absent class takes part by default (spec §6)


def test_class_frequency_weighting_is_a_no_op_for_equal_frequencies():
    lrmap, _ = concentrated_lrmap(3, 12, seed=4)
    lrmap = lrmap / lrmap.sum(1, keepdim=True)  # every class with total mass 1
    table = torch.rand(3, 4, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    plain = lsr_em(lrmap, table, generator=torch.Generator().manual_seed(0))
    weighted = lsr_em(
        lrmap, table, weight_by_class_frequency=True, generator=torch.Generator().manual_seed(0)
    )
    assert torch.allclose(plain, weighted, rtol=1e-8)
    lrmap[0] *= 10
    skewed = lsr_em(lrmap, table, weight_by_class_frequency=True, generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(lsr_em(lrmap, table, generator=torch.Generator().manual_seed(0)), skewed)


def test_coarse_slots_and_naive_baseline():
    codes = torch.tensor([[11, 41], [82, 11]])
    slots = coarse_slots(codes, [0, 11, 41, 82])
    assert slots.tolist() == [[1, 2], [3, 1]]
    table = torch.tensor([[0, 0, 0], [0.9, 0.05, 0.05], [0.1, 0.8, 0.1], [0.0, 0.3, 0.7]])
    assert naive_labels(slots, table).tolist() == [[0, 1], [2, 0]]
    with pytest.raises(ValueError, match=r"\[95\]"):
        coarse_slots(torch.tensor([11, 95]), [0, 11, 41, 82])


def accuracy(prediction, target):
    return float((prediction == target).float().mean())


def test_self_epitomic_lsr_beats_the_naive_baseline():
    image, fine, coarse = synthetic_tile(0)
    probs = self_epitomic_lsr(
        image, coarse, MIXTURES, patch_size=5, samples=2048, generator=torch.Generator().manual_seed(0)
    )
    assert probs.shape == (64, 64, 4)
    assert torch.allclose(probs.sum(-1), torch.ones(64, 64, dtype=probs.dtype))
    naive = accuracy(naive_labels(coarse, MIXTURES), fine)
    assert accuracy(probs.argmax(-1), fine) > naive + 0.1


def test_self_epitomic_lsr_on_a_non_square_tile():
    image, fine, coarse = synthetic_tile(1, height=48, width=64)
    probs = self_epitomic_lsr(image, coarse, MIXTURES, patch_size=5, samples=1024)
    assert probs.shape == (48, 64, 4)
    assert accuracy(probs.argmax(-1), fine) > accuracy(naive_labels(coarse, MIXTURES), fine)


def test_colour_mixture_lsr_recovers_colour_determined_classes():
    image, fine, coarse = synthetic_tile(2)
    probs = colour_mixture_lsr(image, coarse, MIXTURES, components=8, seed=0, fit_pixels=2000)
    assert probs.shape == (64, 64, 4)
    assert accuracy(probs.argmax(-1), fine) > accuracy(naive_labels(coarse, MIXTURES), fine) + 0.1
    again = colour_mixture_lsr(image, coarse, MIXTURES, components=8, seed=0, fit_pixels=2000)
    assert torch.equal(probs, again)
    soft = colour_mixture_lsr(image, coarse, MIXTURES, components=8, seed=0, soft=True, fit_pixels=2000)
    assert torch.allclose(soft.sum(-1), torch.ones(64, 64, dtype=soft.dtype))
