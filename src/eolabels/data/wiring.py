"""Which datasets the data rules acquire, assemble and filter (rules/acquire.smk, rules/assemble.smk).

Two datasets of ``config.datasets`` are not acquired as they are used: ``noldo`` is assembled from
the acquired ``noldo_raw`` (SSL4EO-S12 with incomplete locations), and ``osm`` is the OSM↔DW filter's
choice of DW tiles whose OSM labels (``osm_raw``, OSM land use fetched for the dw tiles) agree with
DW. Consumers keep reading ``results/data/noldo`` and ``results/data/osm``. Free of Snakemake, so the
wiring is unit-tested.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from eolabels.data.synthetic import DW_TILES
from eolabels.workflow import dataset_index, dataset_meta

RAW = {"noldo": "noldo_raw", "osm": "osm_raw"}
"""The acquired dataset behind each dataset that a data rule makes of it."""

FILTER_JOB_KEYS = ("input", "mem_mb", "runtime")
"""Keys of ``osm_filter`` that are no filter setting (the input is wired as the rule's input)."""


def acquired_name(dataset: str, source: str = "synthetic") -> str:
    """The acquired dataset behind ``dataset`` (itself for those used as acquired).

    A local ``osm`` is the authors' released SSL4EO-S12@OSM set, already filtered with its images: it is
    imported as it is; generated OSM labels (on the dw tiles) go through the filter.
    """
    if dataset == "osm" and source == "local":
        return dataset
    return RAW.get(dataset, dataset)


def source_name(acquired: str) -> str:
    """The ``config.datasets`` name (and config.synthetic / config.local key) of an acquired dataset."""
    return {raw: name for name, raw in RAW.items()}.get(acquired, acquired)


def acquired_datasets(datasets: Sequence[str], source: str = "synthetic") -> list[str]:
    """The names the acquire rules of ``source`` write for ``datasets``: each dataset's acquired name,
    and dw wherever generated OSM labels are (they lie on the dw tiles)."""
    names = [acquired_name(d, source) for d in datasets]
    filtered = "osm" in datasets and acquired_name("osm", source) != "osm"
    return names + (["dw"] if filtered and "dw" not in datasets else [])


def synthetic_section(synthetic: Mapping[str, Any], acquired: str) -> dict[str, Any]:
    """The generator settings of one acquired dataset, sorted (reordering the YAML re-runs nothing);
    the OSM labels' generator gets the dw section too (``dw_tiles``), as it labels those tiles."""
    name = source_name(acquired)
    section = dict(sorted(synthetic[name].items()))
    if name == "osm":
        section[DW_TILES] = dict(sorted(synthetic["dw"].items()))
    return section


def osm_filter_paths() -> dict[str, str]:
    """The filter's outputs beside the osm dataset: per-tile agreement, θ sweep table, histogram."""
    return {
        "agreement": "results/osm_filter/agreement.csv",
        "table": "results/tables/osm_filter.csv",
        "table_md": "results/tables/osm_filter.md",
        "histogram": "results/osm_filter/agreement_histogram.png",
    }


def osm_filter_inputs(section: Mapping[str, Any]) -> dict[str, str]:
    """The DW tiles and the OSM label dataset (``osm_filter.input.dataset``: the raw labels, or
    aligned ones once a rule writes them)."""
    osm = section["input"]["dataset"]
    return {
        "dw_index": dataset_index("dw"), "dw_meta": dataset_meta("dw"),
        "osm_index": dataset_index(osm), "osm_meta": dataset_meta(osm),
    }


def osm_filter_settings(section: Mapping[str, Any]) -> dict[str, Any]:
    """The filter settings (the rule's params), sorted: changing θ re-runs the filter, a job size not."""
    return {k: v for k, v in sorted(section.items()) if k not in FILTER_JOB_KEYS}


def osm_filter_tables(datasets: Sequence[str]) -> list[str]:
    """The θ sweep table (for the summary report) when the osm dataset is made."""
    return [osm_filter_paths()["table"]] if "osm" in datasets else []


def osm_filter_targets(datasets: Sequence[str]) -> list[str]:
    """What ``all`` builds of the filter besides the osm data card: the sweep table and the histogram."""
    return osm_filter_tables(datasets) + ([osm_filter_paths()["histogram"]] if "osm" in datasets else [])
