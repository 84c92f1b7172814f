"""LSR inputs and outputs in the project's dataset layout (``dataset.json`` + ``index.csv`` + GeoTIFFs).

Inputs are read through :class:`eolabels.data.readers.TileReader`, so every raster is checked against
its index row, and their layers are found by role (:func:`lsr_layers`): the optical image, the coarse
labels and the high-resolution reference, e.g. ``image`` / ``nlcd`` / ``truth`` of the ``lsr`` kind
(synthetic or the real Chesapeake patches) and ``s2`` / ``modis`` / ``dfc`` of ``dfc2020``.
Predictions are written as a dataset of their own, one label GeoTIFF per sample on the input's grid,
so they open in QGIS beside the imagery.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from eolabels.data.geotiff import GridSpec, read_geotiff
from eolabels.data.index import DatasetIndex, DatasetMeta, IndexError_
from eolabels.data.kinds import label_layer
from eolabels.data.readers import TileReader
from eolabels.data.writer import DatasetWriter
from eolabels.tables import UNLABELLED, load_schema

PREDICTION_LAYER = "prediction"


@dataclass(frozen=True)
class LayerNames:
    """Which dataset layers play image, coarse labels and truth (e.g. ``image``/``nlcd``/``truth``)."""

    image: str
    coarse: str
    truth: str


def lsr_layers(meta: DatasetMeta) -> LayerNames:
    """The layers label super-resolution reads, by role: the optical image (aerial or S2, never S1),
    the ``coarse_label`` layer, and the reference scored against: the ``truth`` where the dataset has
    one (synthetic world, Chesapeake), else its high-resolution ``label`` layer (DFC2020's labels)."""
    optical = [n for n, s in meta.layers.items() if s.role == "image" and s.modality != "s1"]
    if len(optical) != 1:
        raise IndexError_(f"dataset {meta.name!r}: want one optical image layer for LSR, found {optical}")
    reference = meta.layer("truth") if meta.has_layer("truth") else meta.layer("label")
    return LayerNames(image=optical[0], coarse=meta.layer("coarse_label"), truth=reference)


@dataclass(frozen=True)
class LabelledTile:
    """One sample: image scaled to ~[0, 1] (C×H×W float32), coarse codes and truth ids (H×W int64)."""

    name: str
    image: Tensor
    coarse: Tensor
    truth: Tensor
    grid: GridSpec


def read_tiles(
    root: str | os.PathLike[str],
    image_scale: float,
    bands: Sequence[str] | None = None,
    split: str | None = None,
) -> list[LabelledTile]:
    """Every sample of ``split`` (all when None), its layers found by role (:func:`lsr_layers`) and
    checked against the index; ``bands`` picks image bands by name (all when None); the image is
    divided by ``image_scale`` (255 for NAIP, 10⁴ for S2 DN)."""
    index = DatasetIndex.open(root)
    layers = lsr_layers(index.meta)
    band_names = index.meta.layers[layers.image].bands
    unknown = [b for b in bands or () if b not in band_names]
    if unknown:
        raise ValueError(f"{index.root}: image layer {layers.image!r} has no bands {unknown} (has {band_names})")
    picks = [band_names.index(b) for b in bands] if bands else list(range(len(band_names)))
    truth_positions = _position_lut(index.meta.layers[layers.truth].schema)
    tiles = []
    with TileReader(index) as reader:
        for number in reader.rows(split):
            data = reader.read(number, [layers.image, layers.coarse, layers.truth])
            tiles.append(
                LabelledTile(
                    name=str(index.table.iloc[number]["id"]),
                    image=torch.from_numpy(data[layers.image][picks].astype(np.float32) / image_scale),
                    coarse=torch.from_numpy(data[layers.coarse][0].astype(np.int64)),
                    truth=torch.from_numpy(truth_positions[data[layers.truth][0]]),
                    grid=index.grid(index.table.iloc[number]),
                )
            )
    return tiles


def _position_lut(schema_name: str | None) -> np.ndarray:
    """Label id → class position of ``schema_name`` (ids need not be 0..K−1); 255 stays unlabelled."""
    if schema_name is None:
        raise ValueError("the truth layer names no class schema in dataset.json")
    schema = load_schema(schema_name)
    lut = np.full(256, UNLABELLED, dtype=np.int64)
    lut[list(schema.ids)] = np.arange(schema.num_classes)
    return lut


def write_predictions(
    root: str | os.PathLike[str],
    tiles: Sequence[LabelledTile],
    maps: Sequence[Tensor],
    schema_name: str,
    description: str,
    source: str,
) -> Path:
    """One uint8 label GeoTIFF per tile on the tile's grid (class colours embedded), plus the index."""
    root = Path(root)
    schema = load_schema(schema_name)
    meta = DatasetMeta(
        name=root.name, source=source, layers={PREDICTION_LAYER: label_layer(schema_name)}, description=description
    )
    writer = DatasetWriter(root, meta)
    for tile, labels in zip(tiles, maps, strict=True):
        ids = np.asarray(schema.ids, dtype=np.uint8)[labels.cpu().numpy()]
        writer.add(tile.name, "test", 0, tile.grid, {PREDICTION_LAYER: ids})
    return writer.close()


def read_predictions(root: str | os.PathLike[str], tiles: Sequence[LabelledTile]) -> list[Tensor]:
    """The prediction of every tile (class positions of the layer's schema), in ``tiles`` order."""
    index = DatasetIndex.open(root)
    lut = _position_lut(index.meta.layers[PREDICTION_LAYER].schema)
    by_id = {str(row["id"]): row for row in index.rows()}
    missing = [tile.name for tile in tiles if tile.name not in by_id]
    if missing:
        raise ValueError(f"{index.root}: no prediction for samples {missing}")
    maps = []
    for tile in tiles:
        row = by_id[tile.name]
        data = read_geotiff(index.path(row, PREDICTION_LAYER), expect=index.grid(row))[0][0]
        maps.append(torch.from_numpy(lut[data]))
    return maps
