"""Whole tiles of a dataset directory in memory, by role, for the similarity stages.

The synthetic sets are small (tens of tiles); the stages train, relabel and score every tile, so they
read everything once through :class:`eolabels.data.readers.TileReader` and keep arrays. Layers are
asked for by role (``image``, ``label``, ``truth``; the image of one modality), so the stages read any
dataset whose description declares those roles.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from eolabels.data.index import DatasetIndex, LayerSpec
from eolabels.data.readers import TileReader

# roles held as N x H x W class maps (single band); images keep their band axis
_LABEL_ROLES = ("label", "coarse_label", "truth")


@dataclass
class TileSet:
    """Rows of one dataset and their layers stacked by role: images N x bands x H x W, labels N x H x W.

    ``layer_names`` maps each role to the dataset's layer that plays it (e.g. ``label`` → ``dw``).
    """

    index: DatasetIndex
    rows: list[int]
    layers: dict[str, np.ndarray]
    layer_names: dict[str, str]

    @property
    def table(self) -> pd.DataFrame:
        return self.index.table.iloc[self.rows]

    def names(self) -> list[str]:
        """``<id>/<season>`` of every tile, in order."""
        return [f"{r['id']}/{r['season']}" for _, r in self.table.iterrows()]

    def spec(self, role: str) -> LayerSpec:
        """The description of the layer that plays ``role``."""
        return self.index.meta.layers[self.layer_names[role]]

    def subset(self, positions: Sequence[int]) -> TileSet:
        """The tiles at ``positions`` (in that order)."""
        picks = list(positions)
        layers = {k: v[picks] for k, v in self.layers.items()}
        return TileSet(self.index, [self.rows[i] for i in picks], layers, self.layer_names)


def load_tiles(
    root: str | os.PathLike[str], roles: Sequence[str], split: str | None = None, *, modality: str = "s2"
) -> TileSet:
    """Read the layers playing ``roles`` for every row (of ``split``) of the dataset at ``root``.

    ``image`` is the image of ``modality``; label roles are squeezed to N x H x W; tiles of different
    sizes are an error.
    """
    index = DatasetIndex.open(Path(root))
    names = {role: index.meta.layer(role, modality=modality if role == "image" else None) for role in roles}
    with TileReader(index) as reader:
        rows, arrays = reader.stack(list(names.values()), split)
    layers = {role: arrays[name][:, 0] if role in _LABEL_ROLES else arrays[name] for role, name in names.items()}
    return TileSet(index, rows, layers, names)
