"""DFC2020 pieces (spec §9): soft p(ℓ|c) from a mapping, the ensemble rule, the distilled FCN."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from eolabels.epitome.dfc import (
    DistilledFCN,
    ensemble_colour_epitome,
    soft_table_from_mapping,
    standardise_bands,
    train_distilled_fcn,
    weighted_mapping,
)
from eolabels.tables import load_mapping

# A small mapping in the shape of spec §9.1 (source codes → target classes, with one split).
MAPPING = {1: {10: 1.0}, 2: {20: 1.0}, 3: {10: 1.0, 20: 1.0, 30: 2.0}, 4: {30: 1.0}}
TARGETS = [10, 20, 30, 40]


def test_soft_table_rows():
    table = soft_table_from_mapping(MAPPING, [0, 1, 2, 3, 4], TARGETS, confidence=0.7)
    assert table.shape == (5, 4)
    assert torch.all(table[0] == 0)  # unmapped code: contributes nothing
    assert table[1].tolist() == pytest.approx([0.7, 0.1, 0.1, 0.1])
    assert table[3].tolist() == pytest.approx([0.175, 0.175, 0.35, 0.3])  # split 1:1:2 of 0.7
    assert torch.allclose(table[1:].sum(1), torch.ones(4, dtype=table.dtype))
    assert table.argmax(1)[1:].tolist() == [0, 1, 2, 2]


def test_soft_table_full_support_and_errors():
    table = soft_table_from_mapping({1: {10: 1.0, 20: 3.0}}, [1], [10, 20])
    assert table[0].tolist() == pytest.approx([0.25, 0.75])
    with pytest.raises(ValueError, match="not among the target classes"):
        soft_table_from_mapping({1: {99: 1.0}}, [1], TARGETS)
    with pytest.raises(ValueError, match="confidence"):
        soft_table_from_mapping(MAPPING, [1], TARGETS, confidence=0.0)


def test_igbp_table_from_the_project_mapping():
    igbp_to_dfc = load_mapping("igbp_to_dfc2020")  # config/tables: spec §9.1
    scored = [1, 2, 4, 5, 6, 7, 9, 10]  # DFC2020 ids without savanna (3) and snow/ice (8)
    splits = {3: {1: 1.0, 2: 1.0, 4: 1.0}, 8: {}}  # savanna split evenly; snow/ice unmapped
    table = soft_table_from_mapping(weighted_mapping(igbp_to_dfc, splits), list(range(1, 18)), scored)
    assert table.shape == (17, 8)
    assert table[:5, 0].tolist() == pytest.approx([0.7] * 5)  # IGBP 1–5 → forest
    assert table[8].tolist() == pytest.approx([0.7 / 3, 0.7 / 3, 0.7 / 3, 0.06, 0.06, 0.06, 0.06, 0.06])
    assert torch.all(table[14] == 0)  # IGBP 15 snow/ice
    assert table[16].argmax() == 7 and table[13].argmax() == 4  # water → water, mosaic → cropland
    assert torch.allclose(table[[i for i in range(17) if i != 14]].sum(1), torch.ones(16, dtype=table.dtype))


def test_ensemble_takes_colour_labels_only_for_the_confused_classes():
    colour = torch.tensor([[1, 5], [7, 0]])
    epitome = torch.tensor([[2, 2], [3, 4]])
    # shrubland = 5 and barren = 7 in the scored 0..7 order of config/tables/dfc2020.csv
    assert ensemble_colour_epitome(colour, epitome, [5, 7]).tolist() == [[2, 5], [7, 4]]


def test_distilled_fcn_architecture_and_training():
    torch.manual_seed(0)  # weight initialisation
    model = DistilledFCN(in_channels=3, num_classes=4, width=16)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [c.kernel_size for c in convs] == [(3, 3), (3, 3), (1, 1), (1, 1), (1, 1)]
    g = torch.Generator().manual_seed(0)
    images = torch.rand(6, 3, 12, 12, generator=g)
    targets = (images[:, 0] > 0.5).long() + 2 * (images[:, 1] > 0.5).long()
    targets[0, 0, 0] = 255
    assert model(images).shape == (6, 4, 12, 12)
    losses = train_distilled_fcn(
        model, standardise_bands(images), targets, epochs=20, batch_size=3, learning_rate=1e-2, progress=False
    )
    assert losses[-1] < 0.5 * losses[0]


def test_standardise_bands():
    images = torch.rand(4, 2, 5, 5) * torch.tensor([1.0, 100.0])[None, :, None, None]
    out = standardise_bands(images)
    assert torch.allclose(out.mean(dim=(0, 2, 3)), torch.zeros(2), atol=1e-5)
    assert torch.allclose(out.std(dim=(0, 2, 3)), torch.ones(2), atol=1e-5)
