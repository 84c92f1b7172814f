"""Data cards: what a generated (or imported) dataset holds, measured from the files on disk.

A card records sizes, class histograms, how good each imperfect label layer is against its
reference (``dataset.json`` → ``extra.label_quality``), and misregistration statistics, so every
number a later stage relies on ("DW-like labels are ~70 % accurate") is checked, not assumed.
A PNG preview puts imagery and labels side by side in the class colours of ``config/tables``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from eolabels.atomic import atomic_path
from eolabels.report.figures import save_figure
from eolabels.data.geotiff import read_geotiff
from eolabels.data.index import DatasetIndex
from eolabels.data.lazy import DEFAULT_SCHEDULER, read_layers, reduce_tiles
from eolabels.metrics import confusion_matrix, metrics_from_confusion
from eolabels.report.tables import is_synthetic, source_tag
from eolabels.tables import UNLABELLED, ClassSchema, load_mapping, load_schema, load_transfer_matrix, lookup_table

PREPARATION_STEPS = ("assembly", "osm_filter")
"""``dataset.json`` ``extra`` entries of the data rules that made a dataset of an acquired one
(data/assembly.py, data/osm_filter.py): the card repeats their counts of kept and dropped samples."""


def _label_lut(spec: dict[str, Any], n_classes: int) -> np.ndarray:
    """How to bring a coarse / foreign label layer into the reference's class ids before comparing,
    as a 256-entry lookup table.

    Mapped classes with no counterpart among the reference's ``n_classes`` (e.g. IGBP savanna or snow
    against DFC2020's 8 classes) become unlabelled: left out of the score, visible in labelled_fraction.
    """
    if "via_mappings" in spec:
        lut = np.arange(256, dtype=np.int64)
        for name in spec["via_mappings"]:
            lut = lookup_table(load_mapping(name), np.int64)[np.minimum(lut, 255)]
        return np.where(lut < n_classes, lut, UNLABELLED)
    if "via_argmax" in spec:  # naive baseline: each coarse class becomes its most likely fine class
        table, src_ids, dst_ids = load_transfer_matrix(spec["via_argmax"], row_sums="renormalize")
        lut = np.full(256, UNLABELLED, dtype=np.int64)
        for i, s in enumerate(src_ids):
            lut[s] = dst_ids[int(np.argmax(table[i]))]
        return lut
    return np.arange(256, dtype=np.int64)


# displacement norms are histogrammed in bins of this width (px) up to DISPLACEMENT_RANGE: the
# 95th percentile is exact to half a bin and the memory of the card stays that of a few tiles
DISPLACEMENT_BIN = 1e-3
DISPLACEMENT_RANGE = 64.0


@dataclass(frozen=True)
class CardPlan:
    """What one pass over the tiles measures: the layers to read (checked against their schemas), the
    label-quality comparisons (label, reference, lookup table, class count) and the displacement layer."""

    index: DatasetIndex
    schemas: dict[str, ClassSchema]
    quality: list[tuple[str, str, np.ndarray, int]]
    displacement: str | None

    @classmethod
    def of(cls, index: DatasetIndex) -> CardPlan:
        schemas = {name: load_schema(s.schema) for name, s in index.meta.layers.items() if s.schema}
        quality = []
        for q in index.meta.extra.get("label_quality", []):
            n = schemas[q["reference"]].num_classes
            quality.append((q["label"], q["reference"], _label_lut(q, n), n))
        disp = index.meta.layer("displacement") if index.meta.has_layer("displacement") else None
        return cls(index, schemas, quality, disp)


def tile_stats(plan: CardPlan, number: int) -> dict[str, Any]:
    """Every card statistic of one tile (row ``number``), each raster read once through the checks."""
    index = plan.index
    row = index.table.iloc[number]
    data = read_layers(index, number, [name for name in index.meta.layers if row[name]], plan.schemas)
    stats: dict[str, Any] = {
        "hist": {name: np.bincount(data[name].ravel(), minlength=256)[:256] for name in plan.schemas if name in data},
        "quality": [],
    }
    season = int(row["season"])
    for label, reference, lut, n in plan.quality:
        if label not in data or reference not in data:  # an acquired set may lack a season's item
            stats["quality"].append({})
            continue
        ref = data[reference][0].astype(np.int64)
        mapped = lut[data[label][0]]
        valid = (mapped != UNLABELLED) & (ref != UNLABELLED)
        matrix = confusion_matrix(ref[valid], mapped[valid], n, ignore_index=None)
        stats["quality"].append({"labelled": int(valid.sum()), "total": int(valid.size), "by_season": {season: matrix}})
    if plan.displacement and plan.displacement in data:
        norms = np.sqrt((data[plan.displacement].astype(np.float64) ** 2).sum(0)).ravel()
        bins = np.minimum((norms / DISPLACEMENT_BIN).astype(np.int64), int(DISPLACEMENT_RANGE / DISPLACEMENT_BIN))
        stats["displacement"] = {
            "hist": np.bincount(bins, minlength=int(DISPLACEMENT_RANGE / DISPLACEMENT_BIN) + 1),
            "sum": float(norms.sum()), "count": int(norms.size), "max": float(norms.max()),
        }
    return stats


def _add(a: Any, b: Any) -> Any:
    """Merge two accumulators of :func:`tile_stats`: counts add, maxima take the larger, dicts by key."""
    if isinstance(a, dict):
        return {k: (_add(a[k], b[k]) if k in a and k in b else a.get(k, b.get(k))) for k in {**a, **b}}
    if isinstance(a, list):
        return [_add(x, y) for x, y in zip(a, b)]
    return a + b


def merge_stats(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    merged = _add(a, b)
    if "displacement" in a and "displacement" in b:
        merged["displacement"]["max"] = max(a["displacement"]["max"], b["displacement"]["max"])
    return merged


def _histogram_entry(counts: np.ndarray, spec: Any, schema: ClassSchema) -> dict[str, Any]:
    total = int(counts.sum())
    hist = {name: int(counts[cid]) for cid, name in zip(schema.ids, schema.names)}
    nodata = int(spec.nodata) if spec.nodata is not None else None
    return {
        "schema": spec.schema,
        "pixels": hist,
        "fraction": {k: round(v / total, 6) if total else 0.0 for k, v in hist.items()},
        "unlabelled_fraction": round(counts[nodata] / total, 6) if nodata is not None and total else 0.0,
    }


def _quality_entry(index: DatasetIndex, spec: dict[str, Any], acc: dict[str, Any]) -> dict[str, Any]:
    ref_schema = load_schema(index.meta.layers[spec["reference"]].schema)
    n = ref_schema.num_classes
    by_season = acc.get("by_season", {})
    overall = sum(by_season.values(), np.zeros((n, n), dtype=np.int64))
    scores = metrics_from_confusion(overall)
    present = metrics_from_confusion(overall, average_over="present")
    labelled, total = acc.get("labelled", 0), acc.get("total", 0)
    out = {
        "label": spec["label"],
        "reference": spec["reference"],
        "how": {k: v for k, v in spec.items() if k.startswith("via")} or "same ids",
        "pixel_accuracy": round(scores["OA"], 4),
        "mIoU": round(scores["mIoU"], 4),
        "mIoU_present_classes": round(present["mIoU"], 4),
        "labelled_fraction": round(labelled / total, 4) if total else 0.0,
        "recall_per_class": {name: round(float(v), 4) for name, v in zip(ref_schema.names, scores["recall"])},
    }
    if index.meta.seasons:  # multi-season datasets: noise is season-dependent by design
        out["pixel_accuracy_by_season"] = {
            index.meta.seasons[s]: round(metrics_from_confusion(m)["OA"], 4) for s, m in sorted(by_season.items())
        }
    return out


def _displacement_entry(acc: dict[str, Any]) -> dict[str, float]:
    cumulative = np.cumsum(acc["hist"])
    p95_bin = int(np.searchsorted(cumulative, 0.95 * acc["count"]))
    return {
        "mean_px": round(acc["sum"] / acc["count"], 4),
        "p95_px": round(min((p95_bin + 0.5) * DISPLACEMENT_BIN, acc["max"]), 4),
        "max_px": round(acc["max"], 4),
    }


def check_rasters(index: DatasetIndex, *, scheduler: str = DEFAULT_SCHEDULER, workers: int | None = None) -> None:
    """Read every raster of the dataset once through the reader's checks, so damage shows here and
    not in a consumer after hours of training: a truncated or unreadable file, a grid or band count
    that differs from the index, NaN / inf imagery, a label id outside the layer's schema. Each
    failure names the file."""
    reduce_tiles(partial(tile_stats, CardPlan.of(index)), merge_stats, len(index), scheduler=scheduler, workers=workers)


def dataset_card(
    root: str | os.PathLike[str], *, scheduler: str = DEFAULT_SCHEDULER, workers: int | None = None
) -> dict[str, Any]:
    """All card statistics of the dataset under ``root``, from one checked pass over its files: a dask
    reduction over tiles (:func:`eolabels.data.lazy.reduce_tiles`) on ``scheduler``."""
    index = DatasetIndex.open(root)
    plan = CardPlan.of(index)
    acc = reduce_tiles(partial(tile_stats, plan), merge_stats, len(index), scheduler=scheduler, workers=workers)
    t = index.table
    card: dict[str, Any] = {
        "name": index.meta.name,
        "source": index.meta.source,
        "synthetic": is_synthetic(index.meta.source),
        "description": index.meta.description,
        "samples": int(len(t)),
        "locations": int(t["id"].nunique()),
        "splits": {str(k): int(v) for k, v in t.groupby("split")["id"].nunique().items()},
        "seasons": list(index.meta.seasons),
        "tile_shapes": sorted({f"{h}x{w}" for h, w in zip(t["height"], t["width"])}),
        "crs": sorted(set(t["crs"])),
        "layers": {
            name: {"bands": list(s.bands), "dtype": s.dtype, "role": s.role, "schema": s.schema}
            for name, s in index.meta.layers.items()
        },
        "class_histograms": {
            name: _histogram_entry(acc["hist"].get(name, np.zeros(256, dtype=np.int64)), index.meta.layers[name], schema)
            for name, schema in plan.schemas.items()
        },
        "generator": index.meta.extra,
    }
    if "rejected" in index.meta.extra:  # tiles or pixels a released-layout reader dropped, by reason
        card["rejected"] = index.meta.extra["rejected"]
    quality = [_quality_entry(index, q, a) for q, a in zip(index.meta.extra.get("label_quality", []), acc["quality"])]
    if quality:
        card["label_quality"] = quality
    if "displacement" in acc:
        card["misregistration"] = _displacement_entry(acc["displacement"])
    for step in PREPARATION_STEPS:  # what assembly / the OSM↔DW filter dropped on the way here
        if step in index.meta.extra:
            card[step] = index.meta.extra[step]
    return card


def write_datacard(
    root: str | os.PathLike[str], out_json: str | os.PathLike[str], *, scheduler: str = DEFAULT_SCHEDULER, workers: int | None = None
) -> dict[str, Any]:
    card = dataset_card(root, scheduler=scheduler, workers=workers)
    with atomic_path(out_json) as tmp:
        tmp.write_text(json.dumps(card, indent=2))
    return card


def _rgb(data: np.ndarray, bands: tuple[str, ...]) -> np.ndarray:
    """A per-channel 2–98 % stretched true-colour composite (or the first band in grey)."""
    order = [bands.index(b) for b in ("B4", "B3", "B2") if b in bands] or [
        bands.index(b) for b in ("R", "G", "B") if b in bands
    ]
    img = (data[order] if len(order) == 3 else data[:1].repeat(3, 0)).astype(np.float64)
    lo = np.percentile(img, 2, axis=(1, 2), keepdims=True)
    hi = np.percentile(img, 98, axis=(1, 2), keepdims=True)
    return np.clip((img - lo) / np.maximum(hi - lo, 1e-9), 0, 1).transpose(1, 2, 0)


def plot_preview(
    root: str | os.PathLike[str], out_png: str | os.PathLike[str], n_samples: int = 3
) -> Path:
    """Imagery and every label layer of the first samples, side by side, in the tables' colours."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    index = DatasetIndex.open(root)
    layers = list(index.meta.layers)
    rows = list(index.rows())[:n_samples]
    fig, axes = plt.subplots(len(rows), len(layers), figsize=(2.6 * len(layers), 2.6 * len(rows) + 0.9), squeeze=False)
    legends: dict[str, Any] = {}
    for r, row in enumerate(rows):
        for c, layer in enumerate(layers):
            spec = index.meta.layers[layer]
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if not row[layer]:
                ax.set_title(f"{layer}: missing", fontsize=8)
                continue
            data = read_geotiff(index.path(row, layer))[0]
            if spec.schema:
                schema = load_schema(spec.schema)
                lut = np.full(256, -1)
                lut[list(schema.ids)] = np.arange(schema.num_classes)
                pos = lut[data[0]]
                rgb = np.ones(pos.shape + (3,))
                rgb[pos >= 0] = schema.rgb()[pos[pos >= 0]]
                ax.imshow(rgb, interpolation="nearest")
                legends[spec.schema] = schema
            elif spec.role == "displacement":
                im = ax.imshow(np.sqrt((data.astype(float) ** 2).sum(0)), cmap="magma")
                fig.colorbar(im, ax=ax, fraction=0.046, label="px")
            elif spec.modality == "s1":
                ax.imshow(data[0], cmap="gray", vmin=-25, vmax=0)
            else:
                ax.imshow(_rgb(data, spec.bands))
            season = index.meta.seasons[int(row["season"])] if index.meta.seasons else ""
            ax.set_title(f"{row['id']} {season}\n{layer} ({spec.role})" if c == 0 else f"{layer} ({spec.role})", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
    handles = [
        Patch(color=col, label=f"{schema_name}:{name}")
        for schema_name, schema in legends.items()
        for name, col in zip(schema.names, schema.colors)
    ]
    if handles:
        fig.legend(handles=handles, loc="lower center", ncol=min(len(layers) + 1, 5), fontsize=6, frameon=False)
    fig.suptitle(f"{index.meta.name}: {source_tag(index.meta.source)}", fontsize=10)
    fig.tight_layout(rect=(0, 0.08 if handles else 0, 1, 0.96))
    return save_figure(fig, out_png, dpi=90)
