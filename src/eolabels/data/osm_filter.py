"""The OSM↔DW agreement filter (CromSS §II-B, spec §9): which DW tiles keep their OSM labels.

OSM land use was fetched for every Dynamic World expert tile; the paper treats the DW labels as
ground truth, maps each OSM class to the set of DW classes it may cover (Table I,
``config/tables/osm_to_dw.csv``) and keeps a tile when its overall agreement

    OA = #{pixels labelled in both whose OSM class maps to a set holding the DW label}
         / #{pixels labelled in both}

reaches θ. θ was lost from the paper (spec §9), so the threshold is a setting and the filter writes
the kept counts for a sweep of θ and a histogram of the per-tile OA beside the result. The kept tiles
become the downstream ``osm`` dataset, split as the paper's: test = the DW-test tiles that pass plus
passing DW-train tiles up to ``test_tiles`` (the paper: 106 + 294 = 400), train = the other passing
DW-train tiles; the DW-train tiles moved to test may get the paper's one-pixel zero border (510 →
512 px).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from eolabels.data.geotiff import GridSpec
from eolabels.data.index import DatasetIndex, IndexError_
from eolabels.data.kinds import OSM
from eolabels.data.readers import TileReader
from eolabels.data.writer import DatasetWriter
from eolabels.data.lazy import DEFAULT_SCHEDULER, read_layers, tile_rows
from eolabels.tables import UNLABELLED, ClassSchema, load_many_to_many, load_schema

log = logging.getLogger(__name__)

MAPPING = "osm_to_dw"  # Table I of the paper, config/tables/osm_to_dw.csv


@dataclass(frozen=True)
class FilterSettings:
    """The ``osm_filter`` config section (config/schemas/osm_filter.yaml holds the defaults)."""

    threshold: float = 0.7
    sweep: tuple[float, ...] = (0.3, 0.4, 0.5, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9)
    test_tiles: int = 2
    pad_moved_tiles: bool = False


def agreement_lookup(mapping: Mapping[int, frozenset[int]]) -> np.ndarray:
    """``allowed[osm, dw]``: whether OSM class ``osm`` maps to a set holding DW class ``dw`` (256×256,
    so any uint8 pair indexes it; unlabelled ids are never allowed)."""
    allowed = np.zeros((256, 256), dtype=bool)
    for osm, dws in mapping.items():
        allowed[osm, sorted(dws)] = True
    allowed[UNLABELLED, :] = allowed[:, UNLABELLED] = False
    return allowed


def tile_agreement(osm: np.ndarray, dw: np.ndarray, allowed: np.ndarray) -> tuple[int, int]:
    """(agreeing, labelled-in-both) pixel counts of one tile: the numerator and denominator of its OA,
    read off the tile's joint histogram of (OSM, DW) ids."""
    if osm.shape != dw.shape:
        raise ValueError(f"OSM labels {osm.shape} and DW labels {dw.shape} differ in shape")
    joint = np.bincount((osm.astype(np.int64) << 8 | dw).ravel(), minlength=256 * 256).reshape(256, 256)
    both = joint.copy()
    both[UNLABELLED, :] = both[:, UNLABELLED] = 0
    return int(both[allowed].sum()), int(both.sum())


def agreement_ratio(agree: int, labelled: int) -> float:
    """A tile's OA; NaN where no pixel is labelled in both (such a tile never passes)."""
    return agree / labelled if labelled else float("nan")


@dataclass(frozen=True)
class PairedTiles:
    """The DW dataset and the OSM label dataset, paired tile by tile (same id, same grid)."""

    dw: DatasetIndex
    osm: DatasetIndex
    osm_layer: str
    dw_layer: str
    truth_layer: str | None  # the DW tiles' true classes (synthetic world), for the OSM labels' accuracy
    registered_layer: str | None  # the OSM labels before misregistration (synthetic world), same schema
    osm_rows: dict[str, int]  # DW tile id → row number in the OSM dataset
    schemas: dict[str, ClassSchema]  # "osm", "dw": the label ids each side is checked against

    @classmethod
    def open(cls, dw_dir: str | os.PathLike[str], osm_dir: str | os.PathLike[str], role: str) -> PairedTiles:
        """Pair by id; an OSM tile without a DW tile, or on another grid, is an error naming it."""
        dw, osm = DatasetIndex.open(dw_dir), DatasetIndex.open(osm_dir)
        osm_layer = osm.meta.layer(role, schema="osm")
        dw_layer = dw.meta.layer("label", schema="dw")
        truth = dw.meta.layer("truth", schema="dw") if dw.meta.has_layer("truth", schema="dw") else None
        registered = osm.meta.layer("truth", schema="osm") if osm.meta.has_layer("truth", schema="osm") else None
        dw_rows = {str(i): n for n, i in enumerate(dw.table["id"])}
        if len(dw_rows) != len(dw.table):
            raise IndexError_(f"{dw.root}: tile ids repeat; the OSM↔DW filter pairs one OSM tile per DW tile")
        osm_rows: dict[str, int] = {}
        for n, row in enumerate(osm.table.to_dict("records")):
            tile = str(row["id"])
            if tile not in dw_rows:
                raise IndexError_(f"{osm.root}: OSM tile {tile} has no DW tile in {dw.root}")
            if tile in osm_rows:
                raise IndexError_(f"{osm.root}: OSM tile {tile} listed twice")
            if osm.grid(osm.table.iloc[n]) != dw.grid(dw.table.iloc[dw_rows[tile]]):
                raise IndexError_(f"{osm.root}: OSM tile {tile} lies on another grid than DW tile {tile} in {dw.root}")
            osm_rows[tile] = n
        return cls(dw, osm, osm_layer, dw_layer, truth, registered, osm_rows, {"osm": load_schema("osm"), "dw": load_schema("dw")})


def tile_row(pairs: PairedTiles, allowed: np.ndarray, number: int) -> dict[str, Any]:
    """One DW tile's row of :func:`agreement_table` (row ``number`` of the DW index), its rasters read
    through the checks."""
    row = pairs.dw.table.iloc[number]
    tile = str(row["id"])
    out: dict[str, Any] = {"id": tile, "split": row["split"], "agree": 0, "labelled": 0}
    if pairs.truth_layer:
        out.update(truth_agree=0, truth_labelled=0)
    if pairs.registered_layer:
        out.update(registered_agree=0, registered_labelled=0)
    if tile not in pairs.osm_rows:
        return out
    osm_layers = [pairs.osm_layer] + ([pairs.registered_layer] if pairs.registered_layer else [])
    read = read_layers(pairs.osm, pairs.osm_rows[tile], osm_layers, {layer: pairs.schemas["osm"] for layer in osm_layers})
    osm = read[pairs.osm_layer][0]
    dw_layers = [pairs.dw_layer] + ([pairs.truth_layer] if pairs.truth_layer else [])
    dw = read_layers(pairs.dw, number, dw_layers, {layer: pairs.schemas["dw"] for layer in dw_layers})
    out["agree"], out["labelled"] = tile_agreement(osm, dw[pairs.dw_layer][0], allowed)
    if pairs.truth_layer:
        out["truth_agree"], out["truth_labelled"] = tile_agreement(osm, dw[pairs.truth_layer][0], allowed)
    if pairs.registered_layer:
        out["registered_agree"], out["registered_labelled"] = same_class(osm, read[pairs.registered_layer][0])
    return out


def same_class(labels: np.ndarray, reference: np.ndarray) -> tuple[int, int]:
    """(equal, labelled-in-both) pixel counts of two label rasters of one schema: how many of the OSM
    labels sit where the registered OSM map has the same class (the misregistration's cost)."""
    both = (labels != UNLABELLED) & (reference != UNLABELLED)
    return int((both & (labels == reference)).sum()), int(both.sum())


def agreement_table(
    pairs: PairedTiles, allowed: np.ndarray, *, scheduler: str = DEFAULT_SCHEDULER, workers: int | None = None
) -> pd.DataFrame:
    """Per DW tile: id, DW split, pixels labelled in both, agreeing pixels, OA; with the DW truth, the
    OSM labels' accuracy against it too (``truth_agree`` / ``truth_labelled``), with the registered OSM
    labels their agreement with those (``registered_agree`` / ``registered_labelled``). A DW tile without OSM
    labels has 0 labelled pixels and OA NaN. Tiles are visited by a dask reduction on ``scheduler``."""
    rows = tile_rows(partial(tile_row, pairs, allowed), len(pairs.dw), scheduler=scheduler, workers=workers)
    table = pd.DataFrame(rows)
    table["oa"] = [agreement_ratio(a, n) for a, n in zip(table["agree"], table["labelled"])]
    return table


def passes(table: pd.DataFrame, threshold: float) -> pd.Series:
    """Which tiles pass: OA ≥ θ (a tile with nothing labelled in both never does)."""
    return table["oa"].ge(threshold) & table["labelled"].gt(0)


def sweep_table(table: pd.DataFrame, thresholds: Sequence[float]) -> pd.DataFrame:
    """Kept tile counts per θ (all, DW-train, DW-test), the pixels kept (labelled in both OSM and DW),
    the kept tiles' mean OA and, with the truth, their OSM labels' pixel accuracy against it (the
    filter's gain in label quality: through Table I against the true DW classes, and class for class
    against the registered OSM labels)."""
    rows = []
    for theta in sorted(set(float(t) for t in thresholds)):
        kept = table[passes(table, theta)]
        row: dict[str, Any] = {
            "threshold": theta,
            "kept": len(kept),
            "kept_dw_train": int((kept["split"] == "train").sum()),
            "kept_dw_test": int((kept["split"] == "test").sum()),
            "kept_fraction": round(len(kept) / len(table), 4),
            "kept_pixels": int(kept["labelled"].sum()),
            "mean_oa_kept": round(float(kept["oa"].mean()), 4) if len(kept) else float("nan"),
        }
        if "truth_agree" in table:
            labelled = int(kept["truth_labelled"].sum())
            row["osm_accuracy_kept"] = round(int(kept["truth_agree"].sum()) / labelled, 4) if labelled else float("nan")
        if "registered_agree" in table:
            labelled = int(kept["registered_labelled"].sum())
            row["registered_accuracy_kept"] = (
                round(int(kept["registered_agree"].sum()) / labelled, 4) if labelled else float("nan"))
        rows.append(row)
    return pd.DataFrame(rows)


def split_tiles(table: pd.DataFrame, threshold: float, test_tiles: int, seed: int) -> dict[str, str]:
    """The kept tiles' splits: every passing DW-test tile in test, then passing DW-train tiles (a seeded
    draw) until test holds ``test_tiles``; the remaining passing DW-train tiles in train."""
    kept = table[passes(table, threshold)]
    test = [str(i) for i in kept.loc[kept["split"] == "test", "id"]]
    train = [str(i) for i in kept.loc[kept["split"] == "train", "id"]]
    n_move = max(0, test_tiles - len(test))
    if n_move >= len(train):
        raise ValueError(
            f"OSM↔DW filter at θ={threshold}: {len(train)} DW-train and {len(test)} DW-test tiles pass, too few "
            f"for {test_tiles} test tiles and a training set; lower config.osm_filter.threshold or test_tiles"
        )
    moved = set(np.random.default_rng(seed).permutation(train)[:n_move].tolist())
    return {tile: "test" for tile in test} | {tile: "test" if tile in moved else "train" for tile in train}


def pad_grid(grid: GridSpec, pad: int) -> GridSpec:
    """The grid of a tile with ``pad`` pixels added on every side (origin moved out by ``pad`` pixels)."""
    a, b, c, d, e, f = grid.transform
    return GridSpec(
        crs=grid.crs, transform=(a, b, c - pad * (a + b), d, e, f - pad * (d + e)),
        height=grid.height + 2 * pad, width=grid.width + 2 * pad,
    )


def pad_layer(data: np.ndarray, pad: int, value: float) -> np.ndarray:
    """(bands, H, W) with a border of ``pad`` pixels of ``value`` (the paper's zero border; 255 for labels)."""
    return np.pad(data, ((0, 0), (pad, pad), (pad, pad)), constant_values=value)


def write_filtered(
    pairs: PairedTiles, splits: Mapping[str, str], out_dir: str | os.PathLike[str], *,
    pad_moved: bool, extra: Mapping[str, Any],
) -> Path:
    """The downstream ``osm`` dataset of the kept tiles: the DW tiles' imagery and DW labels, the OSM
    labels, and where the OSM dataset has them the registered labels and the displacement."""
    dw_meta, osm_meta = pairs.dw.meta, pairs.osm.meta
    sources = {name: ("dw", name) for name, spec in dw_meta.layers.items() if spec.role == "image"}
    sources["osm"] = ("osm", pairs.osm_layer)
    sources["dw"] = ("dw", pairs.dw_layer)
    if osm_meta.has_layer("truth", schema="osm"):
        sources["osm_registered"] = ("osm", osm_meta.layer("truth", schema="osm"))
    if osm_meta.has_layer("displacement"):
        sources["displacement"] = ("osm", osm_meta.layer("displacement"))
    meta = OSM.meta(
        source=dw_meta.source if dw_meta.source == osm_meta.source else f"{dw_meta.source}+{osm_meta.source}",
        description=f"OSM labels of the DW tiles that pass the OSM↔DW agreement filter ({osm_meta.description})",
        layers=list(sources),
        extra={
            **{k: v for k, v in osm_meta.extra.items() if k not in ("label_quality", "tiles")},
            "osm_filter": dict(extra),
            "label_quality": [{"label": "osm", "reference": "osm_registered"}] if "osm_registered" in sources else [],
        },
    )
    writer = DatasetWriter(out_dir, meta)
    dw_layers = [layer for kind, layer in sources.values() if kind == "dw"]
    osm_layers = [layer for kind, layer in sources.values() if kind == "osm"]
    with TileReader(pairs.dw, require_all_seasons=False) as dw_reader, TileReader(pairs.osm, require_all_seasons=False) as osm_reader:
        for n, row in enumerate(pairs.dw.table.to_dict("records")):
            tile = str(row["id"])
            if tile not in splits:
                continue
            read = {"dw": dw_reader.read(n, dw_layers), "osm": osm_reader.read(pairs.osm_rows[tile], osm_layers)}
            layers = {name: read[kind][layer] for name, (kind, layer) in sources.items()}
            grid = pairs.dw.grid(pairs.dw.table.iloc[n])
            if pad_moved and row["split"] == "train" and splits[tile] == "test":
                grid = pad_grid(grid, 1)
                layers = {
                    name: pad_layer(data, 1, UNLABELLED if meta.layers[name].schema else 0)
                    for name, data in layers.items()
                }
            writer.add(tile, splits[tile], int(row["season"]), grid, layers)
            dw_reader.close()
            osm_reader.close()
    return writer.close()


def plot_agreement(table: pd.DataFrame, threshold: float, out_png: str | os.PathLike[str], title: str) -> Path:
    """Histogram of the per-tile OA by DW split, with θ marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from eolabels.report.figures import save_figure

    fig, ax = plt.subplots(figsize=(6, 3.6))
    bins = np.linspace(0, 1, 21)
    groups = [(split, table.loc[(table["split"] == split) & table["labelled"].gt(0), "oa"]) for split in ("train", "test")]
    ax.hist([g for _, g in groups], bins=bins, stacked=True, label=[f"DW-{s} tiles" for s, _ in groups])
    ax.axvline(threshold, color="k", linestyle="--", label=f"θ = {threshold:g}")
    ax.set_xlabel("OSM↔DW agreement (OA over pixels labelled in both)")
    ax.set_ylabel("tiles")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, out_png, dpi=100)


def filter_summary(table: pd.DataFrame, splits: Mapping[str, str], settings: FilterSettings, osm_input: str) -> dict[str, Any]:
    """The counts the data card and the summary show."""
    moved = sum(1 for tile, split in zip(table["id"], table["split"]) if split == "train" and splits.get(str(tile)) == "test")
    return {
        "rule": "keep DW tiles whose OSM labels agree with DW (Table I mapping) on >= threshold of the pixels labelled in both",
        "osm_input": osm_input,
        "threshold": settings.threshold,
        "tiles": int(len(table)),
        "tiles_with_osm_overlap": int(table["labelled"].gt(0).sum()),
        "kept": len(splits),
        "kept_fraction": round(len(splits) / len(table), 4),
        "train": sum(1 for s in splits.values() if s == "train"),
        "test": sum(1 for s in splits.values() if s == "test"),
        "test_from_dw_train": moved,
        "moved_tiles_padded": bool(settings.pad_moved_tiles),
    }


def load_agreement_lookup() -> np.ndarray:
    """:func:`agreement_lookup` of Table I (``config/tables/osm_to_dw.csv``)."""
    return agreement_lookup(load_many_to_many(MAPPING))
