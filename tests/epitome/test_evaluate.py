"""Scores of LSR maps (epitome/evaluate.py): both mIoU conventions, per tile and pooled, on a hand case."""

from __future__ import annotations

import pytest
import torch

from eolabels.data.geotiff import GridSpec
from eolabels.epitome.data import LabelledTile
from eolabels.epitome.evaluate import POOLED, score_variants

GRID = GridSpec("", (1.0, 0.0, 0.0, 0.0, 1.0, 0.0), 2, 2)


def tile(name, truth):
    truth = torch.tensor(truth)
    return LabelledTile(name, torch.zeros(1, 2, 2), torch.zeros(2, 2, dtype=torch.long), truth, GRID)


def test_scores_by_hand():
    tiles = [tile("a", [[0, 0], [1, 255]]), tile("b", [[1, 1], [1, 1]])]
    maps = [torch.tensor([[0, 1], [1, 2]]), torch.tensor([[1, 1], [1, 0]])]
    table = score_variants(tiles, {"v": maps}, ["w", "f", "g"])
    a = table[table.tile == "a"].iloc[0]
    # tile a: class 0 tp 1 fn 1; class 1 tp 1 fp 1; class 2 absent from truth and prediction (IoU 1)
    assert a.OA == pytest.approx(2 / 3)
    assert a.IoU_w == pytest.approx(0.5) and a.IoU_f == pytest.approx(0.5) and a.IoU_g == 1.0
    assert a.mIoU == pytest.approx(2 / 3) and a.mIoU_present == pytest.approx(0.5)
    pooled = table[table.tile == POOLED].iloc[0]
    # pooled: class 0 tp 1 fn 1 fp 1 → 1/3; class 1 tp 4 fp 1 fn 1 → 4/6
    assert pooled.OA == pytest.approx(5 / 7)
    assert pooled.IoU_w == pytest.approx(1 / 3) and pooled.IoU_f == pytest.approx(4 / 6)
    assert pooled.mIoU_present == pytest.approx((1 / 3 + 4 / 6) / 2)


def test_pooled_only():
    tiles = [tile("a", [[0, 0], [1, 1]])]
    table = score_variants(tiles, {"x": [torch.zeros(2, 2, dtype=torch.long)]}, ["w", "f"], per_tile=False)
    assert list(table.tile) == [POOLED] and table.OA.item() == 0.5
