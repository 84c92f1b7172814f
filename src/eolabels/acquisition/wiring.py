"""Paths, settings and targets that rules/acquisition.smk wires from the ``earthengine:`` section.

Free of Snakemake so it is unit-tested. The merged datasets live in
``results/acquisition/<dataset>/dataset`` (the common layout); making them the workflow's
``results/data/<dataset>`` for a dataset whose source is ``earthengine`` is one path change here
(:func:`acquired_dataset_dir`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

SHEET_OF = {"noldo": ("noldo", "sheet"), "dw": ("dw_tiles", "sheet"), "osm": ("dw_tiles", "sheet")}
JOB_KEYS = frozenset({"enabled", "datasets", "shards", "mem_mb", "runtime", "sample"})
"""Keys that only pick, place or size jobs: changing them re-runs no shard."""


def acquired_dataset_dir(dataset: str) -> str:
    """Where the merge rule writes a dataset (dataset.json + index.csv + samples/)."""
    return f"results/acquisition/{dataset}/dataset"


def acquired_index(dataset: str) -> str:
    return f"{acquired_dataset_dir(dataset)}/index.csv"


def acquired_meta(dataset: str) -> str:
    return f"{acquired_dataset_dir(dataset)}/dataset.json"


def shard_summary(dataset: str, shard: int | str) -> str:
    """A shard job's output: its manifest as CSV; the shard's files are in the folder beside it."""
    return f"results/acquisition/{dataset}/shards/{shard}.csv"


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


def acquisition_targets(section: Mapping[str, Any]) -> list[str]:
    """The merged datasets `all` builds when the section is enabled."""
    if not section["enabled"]:
        return []
    return [acquired_index(d) for d in section["datasets"]]
