"""Entry points of the data rules (rules/acquire.smk): keyword arguments in, a dataset directory out.

Each writes or describes one dataset in the common layout; the workflow scripts only unpack
``snakemake``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from eolabels.data.assembly import AssemblyReport, assemble
from eolabels.data.datacard import plot_preview, write_datacard
from eolabels.data.lazy import DEFAULT_SCHEDULER
from eolabels.data.local import import_local
from eolabels.data.osm_filter import (
    FilterSettings,
    PairedTiles,
    agreement_table,
    filter_summary,
    load_agreement_lookup,
    plot_agreement,
    split_tiles,
    sweep_table,
    write_filtered,
)
from eolabels.data.synthetic import generate_dataset
from eolabels.data.wiring import source_name
from eolabels.atomic import atomic_path
from eolabels.report.tables import write_table
from eolabels.settings import from_section

PathLike = str | os.PathLike[str]


def acquire_synthetic(*, dataset: str, out_dir: PathLike, generator: Mapping[str, Any], seed: int) -> Path:
    """Rule ``acquire_synthetic``: one dataset of the embedded world (``dataset`` an acquired name such
    as ``noldo_raw``); returns its index."""
    return generate_dataset(source_name(dataset), out_dir, dict(generator), seed=seed)


def acquire_local(*, dataset: str, settings: Mapping[str, Any], out_dir: PathLike) -> Path:
    """Rule ``acquire_local``: one dataset imported from downloaded files; returns its index."""
    return import_local(source_name(dataset), dict(settings), out_dir)


def assemble_noldo(*, raw_dir: PathLike, out_dir: PathLike) -> AssemblyReport:
    """Rule ``assemble_noldo``: NoLDO-S12 from the acquired set, the locations complete in every season."""
    return assemble(raw_dir, out_dir)


def filter_osm(
    *, dw_dir: PathLike, osm_dir: PathLike, role: str, out_dir: PathLike, agreement: PathLike,
    table: PathLike, table_md: PathLike, histogram: PathLike, settings: Mapping[str, Any], seed: int,
    maps: str = "raw", compare: Mapping[str, PathLike] | None = None,
    scheduler: str = DEFAULT_SCHEDULER, workers: int | None = None,
) -> dict[str, Any]:
    """Rule ``filter_osm``: the OSM↔DW agreement per DW tile, the θ sweep, the histogram and the
    downstream osm dataset of the tiles that pass; returns the counts.

    ``osm_dir`` holds the OSM maps the kept dataset is made of (``maps``: ``raw`` as fetched, or
    ``aligned`` by the alignment stage); ``compare`` names other maps of the same tiles (the other of
    the two) whose agreement and kept counts the table and the per-tile CSV show beside them (C5).
    """
    s = from_section(FilterSettings, settings)
    lookup = load_agreement_lookup()
    pairs = PairedTiles.open(dw_dir, osm_dir, role)
    osm_input = f"{Path(osm_dir).name}:{pairs.osm_layer}"
    per_tile = agreement_table(pairs, lookup, scheduler=scheduler, workers=workers)
    tables = {maps: per_tile}
    for name, other in sorted((compare or {}).items()):
        tables[name] = agreement_table(PairedTiles.open(dw_dir, other, role), lookup, scheduler=scheduler,
                                       workers=workers)
    order = sorted(tables, key=lambda name: (name != "raw", name))  # raw first
    with atomic_path(agreement) as tmp:
        pd.concat([tables[n].assign(maps=n) for n in order], ignore_index=True).to_csv(tmp, index=False)
    source = pairs.dw.meta.source
    thresholds = [*s.sweep, s.threshold]
    write_table(
        pd.concat([sweep_table(tables[n], thresholds).assign(maps=n) for n in order], ignore_index=True)
        .pipe(lambda t: t[["maps", *t.columns.drop("maps")]]),
        table, table_md,
        "OSM↔DW agreement filter: kept tiles per threshold θ",
        [f"OSM labels from {osm_input} (maps: {maps}), DW labels from dw; per tile OA over pixels labelled in "
         f"both (Table I mapping). The run keeps θ = {s.threshold} on the {maps} maps."
         + (f" Rows of the {', '.join(n for n in order if n != maps)} maps: the same filter on those maps, "
            "for comparison (not what the downstream osm dataset holds)." if len(order) > 1 else ""),
         "kept_pixels: pixels labelled in both OSM and DW on the kept tiles; osm_accuracy_kept: their OSM "
         "labels' accuracy against the true DW classes through Table I; registered_accuracy_kept: the share "
         "of them equal to the registered (truly aligned) OSM labels (synthetic world)."],
        source=source,
    )
    plot_agreement(per_tile, s.threshold, histogram, f"{osm_input} vs dw ({source})")
    splits = split_tiles(per_tile, s.threshold, s.test_tiles, seed)
    counts = {**filter_summary(per_tile, splits, s, osm_input), "osm_maps": maps}
    write_filtered(pairs, splits, out_dir, pad_moved=s.pad_moved_tiles, extra=counts)
    return counts


def join_osm(*, dw_dir: PathLike, osm_dir: PathLike, out_dir: PathLike) -> Path:
    """Rule ``join_osm``: the θ = 0 join of the OSM labels and the DW tiles they were fetched for — every
    DW tile with an OSM tile, in its DW split, with its imagery, DW labels and the OSM maps as they are
    (what the alignment stage trains and aligns on, as the authors aligned OSM before any filtering)."""
    pairs = PairedTiles.open(dw_dir, osm_dir, "label")
    splits = {str(tile): str(split) for tile, split in zip(pairs.dw.table["id"], pairs.dw.table["split"])
              if str(tile) in pairs.osm_rows}
    return write_filtered(pairs, splits, out_dir, pad_moved=False,
                          extra={"rule": "every DW tile with OSM labels (theta = 0 join, DW splits kept)",
                                 "osm_input": f"{Path(osm_dir).name}:{pairs.osm_layer}", "kept": len(splits),
                                 "tiles": len(pairs.dw)})


def describe_dataset(
    *, dataset_dir: PathLike, card: PathLike, preview: PathLike, preview_samples: int,
    scheduler: str = DEFAULT_SCHEDULER, workers: int | None = None,
) -> None:
    """Rule ``write_datacard``: the data card (sizes, class histograms, label quality; a dask reduction
    over tiles on ``scheduler``) and a preview figure."""
    write_datacard(Path(dataset_dir), card, scheduler=scheduler, workers=workers)
    plot_preview(Path(dataset_dir), preview, n_samples=preview_samples)
