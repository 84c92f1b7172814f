"""Paths, settings and checks that rules/acquisition.smk wires from ``config.source`` and the
``earthengine:`` section.

A dataset whose ``config.source`` is ``earthengine`` is fetched by shard jobs
(``results/acquisition/<dataset>/shards/<k>.csv``) and merged into the workflow's own dataset folder,
``results/data/<acquired name>`` (:func:`eolabels.data.wiring.acquired_name`: noldo → noldo_raw for the
assembly, osm → osm_raw for the OSM↔DW filter, dw as it is), so every rule downstream reads it as it
reads a synthetic or local dataset. The source map is the only list of what to fetch. Free of
Snakemake so it is unit-tested.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from eolabels.data.wiring import acquired_datasets, source_name

SOURCE = "earthengine"
SHEET_OF = {"noldo": ("noldo", "sheet"), "dw": ("dw_tiles", "sheet"), "osm": ("dw_tiles", "sheet")}
"""The datasets Earth Engine provides, and the sheet each is fetched for."""
JOB_KEYS = frozenset({"shards", "mem_mb", "runtime", "sample"})
"""Keys that only place or size jobs: changing them re-runs no shard."""


def source_errors(sources: Mapping[str, str], datasets: Sequence[str]) -> list[str]:
    """Why ``config.source`` cannot be wired, one line per problem: Earth Engine provides noldo, dw
    and osm only; the OSM labels it fetches lie on the DW sheet's tiles, so the OSM↔DW filter needs dw
    from the same source."""
    errors = [
        f"config.source: {d} cannot come from {SOURCE} (it provides {', '.join(SHEET_OF)}); give {d} another source"
        for d in datasets if sources[d] == SOURCE and d not in SHEET_OF
    ]
    if "osm" in datasets and sources["osm"] == SOURCE and sources["dw"] != SOURCE:
        errors.append(
            f"config.source: osm comes from {SOURCE} (OSM labels of the DW sheet's tiles) but dw from "
            f"{sources['dw']}; the OSM↔DW filter pairs them tile by tile: set dw: {SOURCE} too"
        )
    return errors


def merged_datasets(datasets: Sequence[str]) -> list[str]:
    """The ``results/data`` datasets that merge rules write for the datasets from Earth Engine."""
    return acquired_datasets(datasets, SOURCE)


def fetched_datasets(datasets: Sequence[str]) -> list[str]:
    """The datasets that shard jobs fetch (``results/acquisition/<name>``), one per merged dataset."""
    return [source_name(d) for d in merged_datasets(datasets)]


def shard_summary(dataset: str, shard: int | str) -> str:
    """A shard job's output: its manifest as CSV; the shard's files are in the folder beside it."""
    return f"results/acquisition/{dataset}/shards/{shard}.csv"


def shard_summaries(dataset: str, n_shards: int) -> list[str]:
    """Every shard job's output of one fetched dataset (the merge rule's inputs)."""
    return [shard_summary(dataset, k) for k in range(n_shards)]


def shard_dir(summary: str) -> str:
    """The folder of a shard's GeoTIFFs and journal, beside its summary (not a declared output, so a
    killed or failed job keeps its finished locations and the rerun resumes)."""
    return summary[: -len(".csv")]


def sheet_path(section: Mapping[str, Any], dataset: str) -> str:
    group, key = SHEET_OF[dataset]
    return section[group][key]


def shard_settings(section: Mapping[str, Any], dataset: str) -> dict[str, Any]:
    """What a shard's results depend on: transport, request and pairing settings of its dataset,
    key-sorted (reordering the YAML is no change)."""
    keep = {k: v for k, v in section.items() if k not in JOB_KEYS and k not in ("noldo", "dw_tiles", "osm")}
    group = SHEET_OF[dataset][0]
    keep[group] = section[group]
    if dataset == "osm":
        keep["osm"] = section["osm"]
    return dict(sorted(keep.items()))
