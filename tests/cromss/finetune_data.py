"""A tiny downstream dataset for the fine-tuning tests, written through the dataset writer."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from eolabels.data.geotiff import GridSpec
from eolabels.data.kinds import DW
from eolabels.data.writer import DatasetWriter


def write_dw(root: Path, n_train: int = 4, n_test: int = 2, size: int = 32, seed: int = 0,
             label_fn=None) -> Path:
    """A DW-kind dataset whose S2 band 4 (B4) encodes the class, so a model can learn it fast."""
    rng = np.random.default_rng(seed)
    writer = DatasetWriter(root, DW.meta(source="synthetic", description="fine-tuning test tiles", layers=["s2", "s1", "dw"]))
    for i in range(n_train + n_test):
        split = "train" if i < n_train else "test"
        labels = (np.arange(size)[None, :] // (size // 4) + np.arange(size)[:, None] // (size // 2)) % 9
        labels = labels.astype(np.uint8)
        if label_fn is not None:
            labels = label_fn(i, labels)
        s2 = rng.integers(1000, 2000, (13, size, size)).astype(np.uint16)
        s2[3] = 500 + 200 * np.where(labels == 255, 0, labels).astype(np.uint16)
        s1 = rng.normal(-12, 2, (2, size, size)).astype(np.float32)
        grid = GridSpec("EPSG:32633", (10.0, 0.0, 500_000.0 + 1000 * i, 0.0, -10.0, 4_000_000.0), size, size)
        writer.add(f"dw{i:03d}", split, None, grid, {"s2": s2, "s1": s1, "dw": labels})
    writer.close()
    return root
