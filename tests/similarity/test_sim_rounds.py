"""Self-denoising rounds (spec §5.b): gates, bookkeeping, and the classification toy B2."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from eolabels.metrics import confusion_matrix, metrics_from_confusion
from eolabels.similarity.denoise import (
    changed_fraction,
    class_histogram,
    collapsed_classes,
    relabel,
    self_denoise,
    self_denoising_round,
)

CLASSES = 4


def blobs(n_per_class: int = 100, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    centres = torch.tensor([[-2.0, -2.0], [-2.0, 2.0], [2.0, -2.0], [2.0, 2.0]])
    truth = torch.arange(CLASSES).repeat_interleave(n_per_class)
    return centres[truth] + 0.7 * torch.randn(len(truth), 2, generator=gen), truth


def symmetric_flips(truth: torch.Tensor, rate: float, seed: int = 1) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    flip = torch.rand(len(truth), generator=gen) < rate
    shift = torch.randint(1, CLASSES, (len(truth),), generator=gen)
    return torch.where(flip, (truth + shift) % CLASSES, truth)


def train_mlp(x: torch.Tensor, labels: torch.Tensor, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, CLASSES)
    )
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    keep = labels != 255
    for _ in range(200):
        optimiser.zero_grad()
        nn.functional.cross_entropy(model(x[keep]), labels[keep]).backward()
        optimiser.step()
    return model


def predict_probabilities(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return torch.softmax(model(x), dim=1)


def accuracy(truth: torch.Tensor, labels: torch.Tensor) -> float:
    return metrics_from_confusion(confusion_matrix(truth, labels, CLASSES))["OA"]


def test_relabel_gates_by_hand():
    probabilities = torch.tensor([[0.9, 0.1], [0.4, 0.6], [0.45, 0.55], [0.2, 0.8]])
    original = torch.tensor([1, 0, 0, 255])
    assert relabel(probabilities, original).tolist() == [0, 1, 1, 255]
    assert relabel(probabilities, original, confidence=0.58).tolist() == [0, 1, 0, 255]
    gate = torch.tensor([True, False, True, True])
    assert relabel(probabilities, original, density_gate=gate).tolist() == [0, 0, 1, 255]
    assert changed_fraction(original, torch.tensor([0, 1, 0, 255])) == pytest.approx(2 / 3)
    assert class_histogram(original, 3).tolist() == [2, 1, 0]


def test_collapse_guard():
    reference = torch.tensor([0] * 50 + [1] * 40 + [2] * 10)
    ok = torch.tensor([0] * 52 + [1] * 40 + [2] * 8)  # class 2 loses 20% of its share
    collapsed = torch.tensor([0] * 56 + [1] * 38 + [2] * 6)  # class 2 loses 40%
    assert collapsed_classes(reference, ok, 3) == []
    assert collapsed_classes(reference, collapsed, 3) == [2]


def test_b2_symmetric_flips_are_removed_in_one_round():
    x, truth = blobs()
    noisy = symmetric_flips(truth, 0.3)
    before = accuracy(truth, noisy)
    assert 0.65 <= before <= 0.75
    history = self_denoise(x, noisy, train_mlp, predict_probabilities, CLASSES, rounds=3)
    after = accuracy(truth, history[0].labels)
    assert after >= 0.90, (before, after)
    assert history[0].changed_fraction == pytest.approx(1 - accuracy(noisy, history[0].labels))
    assert len(history) >= 2 and history[1].changed_fraction < history[0].changed_fraction


def test_b2_systematic_confusion_is_not_removed():
    # spec §3.4: noise that is not zero-mean over neighbourhoods stays.  Here 60% of class 0 is
    # labelled 1 everywhere, so label 1 is the plurality among class-0 inputs and round 1 keeps it.
    x, truth = blobs()
    gen = torch.Generator().manual_seed(2)
    noisy = torch.where((truth == 0) & (torch.rand(len(truth), generator=gen) < 0.6), 1, truth)
    result = self_denoising_round(x, noisy, noisy, train_mlp, predict_probabilities, CLASSES, 0)
    class0 = truth == 0
    assert accuracy(truth[class0], result.labels[class0]) <= accuracy(truth[class0], noisy[class0])
    assert accuracy(truth[~class0], result.labels[~class0]) >= 0.95


def test_cross_fit_and_density_gate():
    x, truth = blobs(n_per_class=30)
    noisy = symmetric_flips(truth, 0.3)
    seen = []

    def density(model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
        seen.append(len(inputs))
        return -inputs.norm(dim=1)  # stands in for N_S: the outer half of the points is gated

    result = self_denoising_round(
        x,
        noisy,
        noisy,
        train_mlp,
        predict_probabilities,
        CLASSES,
        0,
        density=density,
        cross_fit_folds=2,
    )
    assert len(result.models) == 2 and sorted(seen) == [60, 60]
    outer = -x.norm(dim=1) < (-x.norm(dim=1)).median()
    assert torch.equal(result.labels[outer], noisy[outer])
    assert (result.labels[~outer] != noisy[~outer]).any()
