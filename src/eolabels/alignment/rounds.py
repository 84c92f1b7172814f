"""The authors' self-denoising rounds for map alignment (spec §3.1, §5.c).

Round r trains the chain (one network per scale, coarse to fine) on pairs built from the current maps
``D_r`` (``D_0`` = the dataset's misregistered maps, as they are), then aligns the **original** maps
``D_0`` with it; the result is ``D_{r+1}``, written as a dataset of the input's kind (every layer
copied, the map replaced by the aligned one and, where the true misregistration is known, the
``displacement`` layer replaced by the misregistration left after alignment).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from eolabels.alignment.chain import ChainResult, align_tile, pad_to_multiple
from eolabels.alignment.channels import BandScaler, MapEncoder
from eolabels.alignment.diagnostics import anchor_pairs, similarity_diagnostics
from eolabels.alignment.evaluate import summarise, tile_scores
from eolabels.alignment.figures import neighbours_figure
from eolabels.alignment.neighbours import group_patches
from eolabels.alignment.network import output_size
from eolabels.alignment.pairs import PairSampler, ScaleTile, pad_tile
from eolabels.alignment.tiles import AlignDataset, AlignmentInputError
from eolabels.alignment.trainer import NetworkSettings, ScaleNetwork, ScaleRun, ScaleTrainer, ScaleTrainSettings
from eolabels.alignment.warp import downsample_image, downsample_labels, residual_field
from eolabels.atomic import atomic_path
from eolabels.data.index import DatasetMeta
from eolabels.data.kinds import KINDS
from eolabels.data.readers import TileReader
from eolabels.data.writer import DatasetWriter
from eolabels.report.tables import source_tag
from eolabels.training import plain

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AlignSettings:
    """What the chain runs on and how (config/schemas/alignment.yaml); training recipes apart."""

    scales: tuple[int, ...] = (4, 2, 1)
    bands: tuple[str, ...] = ("B2", "B3", "B4", "B8")
    label_schema: str = "osm"
    map_groups: str | None = "osm_to_osm_groups"
    overlap: int = 4
    train_split: str | None = "train"
    anchor_samples: int = 64
    anchor_sketch_dim: int | None = 512
    neighbour_samples: int = 48
    neighbour_queries: int = 3
    neighbour_k: int = 4

    def __post_init__(self) -> None:
        if list(self.scales) != sorted(set(self.scales), reverse=True) or min(self.scales) < 1:
            raise ValueError(f"scales must be distinct downsampling factors >= 1, coarse to fine; got {self.scales}")
        if self.neighbour_queries > self.neighbour_samples or self.neighbour_k >= self.neighbour_samples:
            raise ValueError(
                f"alignment.neighbour_queries ({self.neighbour_queries}) must be at most neighbour_samples "
                f"({self.neighbour_samples}) and neighbour_k ({self.neighbour_k}) below it"
            )


def scale_tiles(dataset: AlignDataset, maps: list[np.ndarray], scaler: BandScaler, scale: int, margin: int,
                input_size: int, rows: list[int]) -> list[ScaleTile]:
    """Tiles ``rows`` at ``scale``: scaled image block-averaged, map block-mode, padded by ``margin``."""
    out = []
    for i in rows:
        tile = dataset.tiles[i]
        where = f"{dataset.index.root}: tile {tile.name}"
        image = pad_to_multiple(scaler(tile.image, dataset.bands, where), scale, None)
        labels = pad_to_multiple(maps[i], scale, dataset.nodata)
        out.append(pad_tile(tile.name, downsample_image(image, scale), downsample_labels(labels, scale), margin,
                            input_size, dataset.nodata))
    return out


def training_rows(dataset: AlignDataset, split: str | None) -> list[int]:
    rows = [i for i, t in enumerate(dataset.tiles) if split is None or t.split == split]
    if not rows:
        raise AlignmentInputError(f"{dataset.index.root}: no tiles in split {split!r} to train the alignment on")
    return rows


def train_chain(dataset: AlignDataset, maps: list[np.ndarray], settings: AlignSettings, train: ScaleTrainSettings,
                network: NetworkSettings, out_dir: str | os.PathLike[str], seed: int, device: str = "cpu",
                progress: bool = True) -> list[ScaleNetwork]:
    """One network per scale (coarse to fine) trained on pairs from ``maps`` of the training tiles;
    each saved as ``<out_dir>/scale<s>/network.pt`` beside its training checkpoints."""
    rows = training_rows(dataset, settings.train_split)
    scaler = BandScaler.fit([dataset.tiles[i].image for i in rows], dataset.bands, settings.bands)
    encoder = MapEncoder(settings.label_schema, dataset.nodata, settings.map_groups)
    out_size = output_size(train.input_size, network.pool_count)
    margin = (train.input_size - out_size) // 2
    networks = []
    for scale in settings.scales:
        tiles = scale_tiles(dataset, maps, scaler, scale, margin, train.input_size, rows)
        sampler = PairSampler(tiles, encoder, train.input_size, out_size, train.amplitude_px,
                              train.correlation_px / scale, augment=train.augment)
        folder = Path(out_dir) / f"scale{scale}"
        trainer = ScaleTrainer(ScaleRun(scale, train, network), sampler, len(settings.bands), seed=seed + scale,
                               out_dir=folder, device=device, progress=progress)
        trainer.fit()
        log.info("scale %d: %s", scale, trainer.history[-1] if trainer.history else {})
        net = ScaleNetwork(trainer.model.eval(), scale, scaler, encoder, network, train.amplitude_px, train.input_size)
        net.save(folder / "network.pt")
        networks.append(net)
    return networks


def align_all(dataset: AlignDataset, networks: list[ScaleNetwork], overlap: int) -> list[ChainResult]:
    """The chain applied to every tile's original map ``D_0``."""
    return [align_tile(networks, t.image, dataset.bands, t.labels, overlap, f"{dataset.index.root}: tile {t.name}")
            for t in dataset.tiles]


def score(dataset: AlignDataset, results: list[ChainResult], scales: tuple[int, ...]) -> dict[str, dict[str, float]]:
    """Scores against the true field per split and over all tiles (empty without a true field)."""
    per_tile = {}
    for tile, result in zip(dataset.tiles, results):
        if tile.field is None:
            continue
        per_tile.setdefault(tile.split, []).append(tile_scores(
            tile.labels, result.aligned, tile.truth, tile.field, result.field, dataset.nodata, result.stages,
            list(scales)))
    out = {split: summarise(scores) for split, scores in per_tile.items()}
    if per_tile:
        out["all"] = summarise([s for scores in per_tile.values() for s in scores])
    return out


def aligned_meta(dataset: AlignDataset, name: str, description: str, extra: dict[str, Any]) -> DatasetMeta:
    """The input's description under a new name, checked against its kind's contract when it has one."""
    meta = dataset.index.meta
    if meta.name in KINDS:
        checked = KINDS[meta.name].meta(source=meta.source, description=description, layers=list(meta.layers),
                                        seasons=meta.seasons, extra={**meta.extra, **extra})
        return replace(checked, name=name)
    return DatasetMeta(name=name, source=meta.source, layers=dict(meta.layers), seasons=meta.seasons,
                       description=description, extra={**meta.extra, **extra})


def write_aligned(dataset: AlignDataset, results: list[ChainResult], root: str | os.PathLike[str], name: str,
                  extra: dict[str, Any]) -> Path:
    """The aligned maps as a dataset at ``root`` (every layer of the input copied, the map replaced)."""
    meta = aligned_meta(
        dataset, name,
        f"{dataset.index.meta.description} -- layer {dataset.layers['label']!r} aligned to the imagery by the "
        "multi-scale alignment chain (spec netsimilarity.md §5.c)"
        + ("; layer 'displacement' = the misregistration left after alignment" if "displacement" in dataset.layers else ""),
        extra,
    )
    writer = DatasetWriter(root, meta)
    with TileReader(dataset.index) as reader:
        for tile, result in zip(dataset.tiles, results):
            row = dataset.index.table.iloc[tile.row]
            present = [layer for layer in meta.layers if str(row[layer])]
            layers = {k: v if len(meta.layers[k].bands) > 1 else v[0] for k, v in reader.read(tile.row, present).items()}
            layers[dataset.layers["label"]] = result.aligned
            if tile.field is not None:
                layers[dataset.layers["displacement"]] = residual_field(tile.field, result.field)
            writer.add(tile.name, tile.split, int(row["season"]), tile.grid, layers)
    return writer.close()


@dataclass(frozen=True)
class RoundOutputs:
    """Files of one round: trained networks, aligned dataset, predicted fields, scores and, when both
    are given, what the finest network groups together (neighbours.npz and its figure)."""

    networks: str | os.PathLike[str]
    dataset: str | os.PathLike[str]
    fields: str | os.PathLike[str]
    metrics: str | os.PathLike[str]
    neighbours: str | os.PathLike[str] | None = None
    neighbours_figure: str | os.PathLike[str] | None = None

    def __post_init__(self) -> None:
        if (self.neighbours is None) != (self.neighbours_figure is None):
            raise ValueError("RoundOutputs: give both neighbours and neighbours_figure, or neither")


def write_neighbours(dataset: AlignDataset, finest: ScaleNetwork, settings: AlignSettings, train: ScaleTrainSettings,
                     round_number: int, outputs: RoundOutputs, seed: int) -> None:
    """Nearest neighbours of a few query patches under the finest network's similarity and under a
    perceptual distance (alignment.neighbours), on patches of the original maps ``D_0`` drawn with
    ``seed``: the same patches every round."""
    rows = training_rows(dataset, settings.train_split)
    margin = (finest.input_size - finest.output_size) // 2
    tiles = scale_tiles(dataset, [t.labels for t in dataset.tiles], finest.scaler, finest.scale, margin,
                        finest.input_size, rows)
    patches = anchor_pairs(PairSampler(tiles, finest.encoder, finest.input_size, finest.output_size,
                                       train.amplitude_px, train.correlation_px / finest.scale),
                           settings.neighbour_samples, seed)
    groups = group_patches(finest, patches, settings.neighbour_queries, settings.neighbour_k,
                           settings.anchor_sketch_dim, seed)
    groups.save(outputs.neighbours)
    neighbours_figure(
        patches["image"].numpy(), patches["map"].numpy(), settings.bands, groups.similarity.numpy(),
        groups.perceptual.numpy(), groups.queries, groups.by_network, groups.by_perceptual, outputs.neighbours_figure,
        f"round {round_number}: what the scale-{finest.scale} network groups together — "
        f"{source_tag(dataset.index.meta.source)}",
    )


def run_round(dataset: AlignDataset, maps: list[np.ndarray], round_index: int, settings: AlignSettings,
              train: ScaleTrainSettings, network: NetworkSettings, outputs: RoundOutputs, seed: int,
              device: str = "cpu", progress: bool = True) -> dict[str, Any]:
    """Round ``round_index``: train on ``maps`` (``D_r``), align ``D_0``, write ``D_{r+1}`` and scores."""
    round_seed = seed + 1000 * round_index
    networks = train_chain(dataset, maps, settings, train, network, outputs.networks, round_seed, device, progress)
    results = align_all(dataset, networks, settings.overlap)
    finest = networks[-1]
    rows = training_rows(dataset, settings.train_split)
    margin = (finest.input_size - finest.output_size) // 2
    anchors = anchor_pairs(
        PairSampler(scale_tiles(dataset, maps, finest.scaler, finest.scale, margin, finest.input_size, rows),
                    finest.encoder, finest.input_size, finest.output_size, train.amplitude_px,
                    train.correlation_px / finest.scale),
        settings.anchor_samples, seed,
    )
    metrics = {
        "round": round_index + 1,
        "trained_on": f"D{round_index}",
        "scores": score(dataset, results, settings.scales),
        "diagnostics": similarity_diagnostics(finest, anchors, settings.anchor_sketch_dim, seed),
        "settings": plain({**asdict(settings), "train": asdict(train), "network": asdict(network), "seed": seed}),
    }
    if outputs.neighbours is not None:
        write_neighbours(dataset, finest, settings, train, round_index + 1, outputs, seed)
    write_aligned(dataset, results, outputs.dataset, f"{dataset.index.meta.name}_aligned_round{round_index + 1}",
                  {"derived_from": dataset.index.meta.name, "alignment_round": round_index + 1,
                   "alignment": metrics["settings"]})
    with atomic_path(outputs.fields) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, **{t.name: r.field for t, r in zip(dataset.tiles, results)})
    with atomic_path(outputs.metrics) as tmp:
        tmp.write_text(json.dumps(metrics, indent=2))
    return metrics
