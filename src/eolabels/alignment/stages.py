"""Entry points of the alignment rules (rules/align.smk): config values in, files out.

Keyword arguments only: the schema-validated ``alignment`` section and a small frozen dataclass of
output paths that the workflow script fills from the rule's named outputs.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from eolabels.alignment.chain import align_tile
from eolabels.alignment.figures import alignment_figure, similarity_histograms, threshold_curves
from eolabels.alignment.evaluate import THRESHOLDS
from eolabels.alignment.rounds import AlignSettings, RoundOutputs, run_round
from eolabels.alignment.tiles import load_align_dataset, read_maps
from eolabels.alignment.trainer import NetworkSettings, ScaleTrainSettings, load_scale_network
from eolabels.data.index import DatasetIndex
from eolabels.data.readers import TileReader
from eolabels.data.writer import DatasetWriter
from eolabels.report.tables import source_tag, write_table
from eolabels.settings import from_section

log = logging.getLogger(__name__)
PathLike = str | os.PathLike[str]


def settings_from(section: Mapping[str, Any]) -> tuple[AlignSettings, ScaleTrainSettings, NetworkSettings]:
    """The three settings records of a validated ``alignment`` section."""
    return (from_section(AlignSettings, section), from_section(ScaleTrainSettings, section["train"]),
            from_section(NetworkSettings, section["network"]))


def align_round_stage(*, dataset_root: PathLike, previous_root: PathLike | None, round_number: int,
                      outputs: RoundOutputs, alignment: Mapping[str, Any], seed: int, threads: int = 1,
                      device: str = "cpu") -> dict[str, Any]:
    """Round ``round_number`` (1-based: it writes ``D_round``): train on ``D_(round-1)`` (the dataset's
    maps for round 1, else ``previous_root``'s), align the dataset's original maps."""
    torch.set_num_threads(max(1, threads))
    settings, train, network = settings_from(alignment)
    dataset = load_align_dataset(dataset_root, settings.label_schema)
    maps = [t.labels for t in dataset.tiles] if previous_root is None else read_maps(
        previous_root, dataset.tiles, settings.label_schema)
    metrics = run_round(dataset, maps, round_number - 1, settings, train, network, outputs, seed, device)
    log.info("round %d: %s", round_number, json.dumps(metrics["scores"].get("all", {}))[:400])
    return metrics


@dataclass(frozen=True)
class TableOutputs:
    """Files of rule ``tabulate_alignment``: the table, its Markdown, figures, the exported dataset."""

    table: PathLike
    markdown: PathLike
    curves: PathLike
    figure: PathLike
    histogram: PathLike
    dataset: PathLike


def round_rows(metrics: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per maps ``D_r`` (r = 0: as given) and split: scores vs the true field, diagnostics."""
    rows = []
    first = metrics[0]["scores"]
    for split, scores in first.items():
        rows.append({"maps": "D0", "round": 0, "split": split, "boundary_pixels": scores["boundary_pixels"],
                     "epe_px": scores["epe_before_px"], "epe_reduction": 0.0,
                     "within1px": scores.get("within1px_before", np.nan),
                     **{f"acc_t{t}": scores[f"acc_before_t{t}"] for t in THRESHOLDS}})
    for m in metrics:
        for split, scores in m["scores"].items():
            rows.append({
                "maps": f"D{m['round']}", "round": m["round"], "split": split, "boundary_pixels": scores["boundary_pixels"],
                "epe_px": scores["epe_after_px"], "epe_reduction": scores["epe_reduction"],
                "within1px": scores.get("within1px_after", np.nan),
                **{f"acc_t{t}": scores[f"acc_t{t}"] for t in THRESHOLDS},
                **{k: v for k, v in scores.items() if k.endswith("_contract")},
                **{k: v for k, v in m["diagnostics"].items()},
            })
    return pd.DataFrame(rows)


def export_dataset(source: PathLike, root: PathLike, name: str, extra: Mapping[str, Any]) -> Path:
    """Every layer of the dataset at ``source`` written again at ``root`` under ``name``."""
    index = DatasetIndex.open(Path(source))
    meta = index.meta
    out = type(meta)(name=name, source=meta.source, layers=meta.layers, seasons=meta.seasons,
                     description=meta.description, extra={**meta.extra, **extra})
    writer = DatasetWriter(root, out)
    with TileReader(index) as reader:
        for i in range(len(index)):
            row = index.table.iloc[i]
            present = [layer for layer in meta.layers if str(row[layer])]
            data = reader.read(i, present)
            writer.add(str(row["id"]), str(row["split"]), int(row["season"]), index.grid(row),
                       {k: v if len(meta.layers[k].bands) > 1 else v[0] for k, v in data.items()})
    return writer.close()


def tabulate_stage(*, dataset_root: PathLike, metrics: Sequence[PathLike], rounds: Sequence[PathLike],
                   networks: PathLike, neighbours: Sequence[PathLike], outputs: TableOutputs,
                   alignment: Mapping[str, Any], threads: int = 1) -> pd.DataFrame:
    """The per-round table, the figures of the last round, one patch's similarity histogram per round
    (``neighbours``: every round's neighbours.npz), and the last maps exported as the aligned dataset."""
    torch.set_num_threads(max(1, threads))
    settings, _, _ = settings_from(alignment)
    records = [json.loads(Path(p).read_text()) for p in metrics]
    table = round_rows(records)
    dataset = load_align_dataset(dataset_root, settings.label_schema)
    source = dataset.index.meta.source
    write_table(
        table, outputs.table, outputs.markdown,
        f"Multi-scale alignment of {dataset.layers['label']!r} maps, rounds (spec netsimilarity.md §5.c) — {source_tag(source)}",
        [f"D0 = the maps of {dataset.index.meta.name} as given; D_r = D0 aligned by the chain (scales "
         f"{list(settings.scales)}) trained in round r on D_(r-1) (spec §3.1). epe_px: mean |D^ - D| on the boundary "
         "pixels of the given map vs the true misregistration D (D0: |D|); acc_t<t>: fraction within t px (§4.5); "
         "within1px: boundary pixels of the map within 1 px of the true boundary; stage<s>_contract: fraction with "
         "residual <= s px after the stage at scale s (C3). rho_median, n_eff_median, shift_px_median, "
         "consistency_px_median: the finest network's denoising factor and shift on fixed anchor pairs (§3.3)."],
        source=source,
    )
    curves = {f"D{r['round']}" if r['round'] else "D0 (as given)": [r[f"acc_t{t}"] for t in THRESHOLDS]
              for _, r in table[table["split"] == "all"].iterrows()} if (table["split"] == "all").any() else {}
    threshold_curves(curves, outputs.curves, f"boundary pixels within t px — {source_tag(source)}")
    last = records[-1]["round"]
    groups = [np.load(p) for p in neighbours]
    query = int(groups[0]["queries"][0])
    similarity_histograms({f"round {r['round']}": g["similarity"] for r, g in zip(records, groups)}, query,
                          outputs.histogram, f"patch {query}'s network similarities per round\n{source_tag(source)}")
    nets = [load_scale_network(Path(networks) / f"scale{s}" / "network.pt", scale=s, bands=settings.bands)
            for s in settings.scales]
    tile = next((t for t in dataset.tiles if t.split != settings.train_split), dataset.tiles[0])
    result = align_tile(nets, tile.image, dataset.bands, tile.labels, settings.overlap, tile.name)
    alignment_figure(tile, dataset.bands, result.aligned, result.field, settings.label_schema, dataset.nodata,
                     outputs.figure, f"alignment after round {last} ({tile.split} tile) — {source_tag(source)}")
    export_dataset(rounds[-1], outputs.dataset, f"{dataset.index.meta.name}_aligned",
                   {"alignment_rounds": last, "exported_from": str(rounds[-1])})
    return table
