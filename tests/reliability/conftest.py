"""Fixtures of the reliability matrix: a tiny generated dataset to damage."""

from __future__ import annotations

from pathlib import Path

import pytest

from eolabels.data.synthetic import generate_dataset


@pytest.fixture()
def dw(tmp_path) -> Path:
    """Three 16-px samples of the synthetic DW kind (S1, S2, noisy and true labels)."""
    root = tmp_path / "dw"
    generate_dataset("dw", root, {"n_train": 2, "n_test": 1, "tile_size": 16}, seed=0)
    return root

