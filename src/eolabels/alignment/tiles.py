"""Reading the tiles to align from a dataset, by role (spec §5.c).

The image is the dataset's ``image`` layer of modality ``s2``, the map its ``label`` layer of the
configured schema (``osm`` by default: a dataset may hold several label layers), the true
misregistration its ``displacement`` layer and the registered map its ``truth`` layer of the same
schema, when the dataset has them (the synthetic world). Tiles may differ in size. A map that is
all nodata, or rasters on another grid than their index row, fail naming the tile or file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from eolabels.data.geotiff import GridSpec
from eolabels.data.index import DatasetIndex
from eolabels.data.readers import TileReader


class AlignmentInputError(ValueError):
    """Tiles that cannot be aligned (all-nodata map, grids that disagree)."""


@dataclass
class AlignTile:
    """One tile: its index row, raw image (all bands), map, and when known the truth and true field."""

    row: int
    name: str
    split: str
    grid: GridSpec
    image: np.ndarray
    labels: np.ndarray
    truth: np.ndarray | None = None
    field: np.ndarray | None = None


@dataclass
class AlignDataset:
    """A dataset opened for alignment: its index, the layer names playing each role, its tiles."""

    index: DatasetIndex
    layers: dict[str, str]
    tiles: list[AlignTile]

    @property
    def bands(self) -> tuple[str, ...]:
        return self.index.meta.layers[self.layers["image"]].bands

    @property
    def nodata(self) -> int:
        nodata = self.index.meta.layers[self.layers["label"]].nodata
        return 255 if nodata is None else int(nodata)


def role_layers(index: DatasetIndex, label_schema: str) -> dict[str, str]:
    """Layer names of the roles alignment uses (``truth`` and ``displacement`` only where present)."""
    meta = index.meta
    layers = {"image": meta.layer("image", modality="s2"), "label": meta.layer("label", schema=label_schema)}
    if meta.has_layer("truth", schema=label_schema):
        layers["truth"] = meta.layer("truth", schema=label_schema)
    if meta.has_layer("displacement"):
        layers["displacement"] = meta.layer("displacement")
    return layers


def load_align_dataset(root: str | os.PathLike[str], label_schema: str) -> AlignDataset:
    """Every tile of the dataset at ``root``."""
    index = DatasetIndex.open(Path(root))
    layers = role_layers(index, label_schema)
    present = lambda row, name: bool(str(index.table.iloc[row][name]))  # noqa: E731
    tiles = []
    with TileReader(index) as reader:
        for i in range(len(index)):
            row = index.table.iloc[i]
            names = [name for role, name in layers.items() if role == "image" or present(i, name)]
            data = reader.read(i, names)
            where = f"{index.root}: tile {row['id']}"
            if layers["label"] not in data:
                raise AlignmentInputError(f"{where} has no {layers['label']!r} map")
            tiles.append(AlignTile(
                row=i, name=str(row["id"]), split=str(row["split"]), grid=index.grid(row),
                image=data[layers["image"]], labels=data[layers["label"]][0],
                truth=data[layers["truth"]][0] if "truth" in layers and layers["truth"] in data else None,
                field=data.get(layers.get("displacement", "")),
            ))
    nodata = index.meta.layers[layers["label"]].nodata
    for tile in tiles:
        if nodata is not None and (tile.labels == nodata).all():
            raise AlignmentInputError(f"{index.root}: tile {tile.name}: map layer {layers['label']!r} is all nodata")
    return AlignDataset(index, layers, tiles)


def read_maps(root: str | os.PathLike[str], tiles: list[AlignTile], label_schema: str) -> list[np.ndarray]:
    """The maps of ``tiles`` (matched by id) in another dataset with the same tiles: a round's aligned
    maps ``D_r``, which the next round trains on."""
    other = DatasetIndex.open(Path(root))
    layer = other.meta.layer("label", schema=label_schema)
    by_id = {str(r["id"]): i for i, r in other.table.iterrows()}
    maps = []
    with TileReader(other) as reader:
        for tile in tiles:
            if tile.name not in by_id:
                raise AlignmentInputError(f"{other.root}: no tile {tile.name} (the maps to train on must cover every tile)")
            labels = reader.read(by_id[tile.name], [layer])[layer][0]
            if labels.shape != tile.labels.shape:
                raise AlignmentInputError(f"{other.root}: tile {tile.name}: map {labels.shape} vs image {tile.labels.shape}")
            maps.append(labels)
    return maps
