"""Whole tiles of a dataset directory in memory, for the similarity stages.

The synthetic sets are small (tens of tiles); the stages train, relabel and score every tile, so they
read everything once through the index (each raster checked against its row) and keep arrays.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from eolabels.data.index import DatasetIndex
from eolabels.data.readers import WindowReader


@dataclass
class TileSet:
    """Rows of one dataset and their layers stacked: images N x bands x H x W, labels N x H x W."""

    index: DatasetIndex
    rows: list[int]
    layers: dict[str, np.ndarray]

    @property
    def table(self) -> pd.DataFrame:
        return self.index.table.iloc[self.rows]

    def names(self) -> list[str]:
        """``<id>/<season>`` of every tile, in order."""
        return [f"{r['id']}/{r['season']}" for _, r in self.table.iterrows()]


def load_tiles(
    root: str | os.PathLike[str], layers: list[str], split: str | None = None
) -> TileSet:
    """Read ``layers`` of every row (of ``split``) of the dataset at ``root``.

    Single-band label layers are squeezed to N x H x W; tiles of different sizes are an error.
    """
    index = DatasetIndex.open(Path(root))
    rows = [i for i, s in enumerate(index.table["split"]) if split is None or s == split]
    if not rows:
        raise ValueError(f"{root}: no samples in split {split!r}")
    shapes = {(int(index.table.iloc[i]["height"]), int(index.table.iloc[i]["width"])) for i in rows}
    if len(shapes) != 1:
        raise ValueError(f"{root}: tiles of different sizes {sorted(shapes)}; cannot stack")
    size = shapes.pop()
    stacked: dict[str, list[np.ndarray]] = {layer: [] for layer in layers}
    with WindowReader(index) as reader:
        for i in rows:
            for layer, data in reader.read(i, layers, 0, 0, size).items():
                stacked[layer].append(data)
    arrays = {}
    for layer, data in stacked.items():
        array = np.stack(data)
        role = index.meta.layers[layer].role
        arrays[layer] = array[:, 0] if role in ("label", "truth") else array
    return TileSet(index, rows, arrays)
