"""Which datasets the data rules acquire, assemble and filter (rules/acquire.smk, rules/assemble.smk).

Two datasets of ``config.datasets`` are not acquired as they are used: ``noldo`` is assembled from
the acquired ``noldo_raw`` (SSL4EO-S12 with incomplete locations), and ``osm`` is the OSM↔DW filter's
choice of DW tiles whose OSM labels (``osm_raw``, OSM land use fetched for the dw tiles) agree with
DW. Consumers keep reading ``results/data/noldo`` and ``results/data/osm``. Free of Snakemake, so the
wiring is unit-tested.

With the alignment stage enabled the order is the authors' (spec netsimilarity.md §3.1, §5.c): the θ = 0
join of the OSM labels and the DW tiles (``osm_joined``: OSM as is, every tile) feeds the alignment,
whose aligned maps (``osm_aligned``) the filter then runs on; the filter's table shows the raw maps'
counts and accuracy beside the aligned ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from eolabels.data.synthetic import DW_TILES
from eolabels.workflow import dataset_index, dataset_meta

RAW = {"noldo": "noldo_raw", "osm": "osm_raw"}
"""The acquired dataset behind each dataset that a data rule makes of it."""

OSM_JOINED = "osm_joined"
"""The θ = 0 join of the OSM labels and the DW tiles: the alignment stage's input (rule join_osm)."""

OSM_MAPS = {"raw": RAW["osm"], "aligned": "osm_aligned"}
"""The OSM maps the filter may keep, by ``osm_filter.input.maps``: as fetched, or as the alignment
stage exports them (``alignment.wiring.aligned_dataset`` of the join's maps)."""

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


def filter_maps(section: Mapping[str, Any], alignment_enabled: bool) -> str:
    """Which OSM maps the filter keeps (``osm_filter.input.maps``): ``auto`` is the aligned maps when the
    alignment stage is enabled and the raw ones otherwise (so the default run is unchanged); asking
    for ``aligned`` with the stage disabled is a configuration error, not a silent fallback, since the
    user asked for maps the run would not make."""
    choice = section["input"]["maps"]
    if choice == "auto":
        return "aligned" if alignment_enabled else "raw"
    if choice == "aligned" and not alignment_enabled:
        raise ValueError(
            "config.osm_filter.input.maps is 'aligned' but config.alignment.enabled is false: enable the "
            "alignment stage, or filter the raw maps (maps: raw or auto)"
        )
    return choice


def osm_filter_inputs(section: Mapping[str, Any], alignment_enabled: bool) -> dict[str, str]:
    """The DW tiles, the OSM maps the filter keeps (:func:`filter_maps`) and, with the alignment stage
    enabled, the other maps of the same tiles (``compare_*``) for the table's raw vs aligned rows."""
    maps = filter_maps(section, alignment_enabled)
    osm = OSM_MAPS[maps]
    inputs = {
        "dw_index": dataset_index("dw"), "dw_meta": dataset_meta("dw"),
        "osm_index": dataset_index(osm), "osm_meta": dataset_meta(osm),
    }
    if alignment_enabled:
        other = OSM_MAPS[compared_maps(maps)]
        inputs |= {"compare_index": dataset_index(other), "compare_meta": dataset_meta(other)}
    return inputs


def compared_maps(maps: str) -> str:
    """The maps the filter's table shows beside ``maps``: the other of raw and aligned."""
    return "raw" if maps == "aligned" else "aligned"


def osm_filter_settings(section: Mapping[str, Any]) -> dict[str, Any]:
    """The filter settings (the rule's params), sorted: changing θ re-runs the filter, a job size not."""
    return {k: v for k, v in sorted(section.items()) if k not in FILTER_JOB_KEYS}


def osm_filter_tables(datasets: Sequence[str]) -> list[str]:
    """The θ sweep table (for the summary report) when the osm dataset is made."""
    return [osm_filter_paths()["table"]] if "osm" in datasets else []


def osm_filter_targets(datasets: Sequence[str]) -> list[str]:
    """What ``all`` builds of the filter besides the osm data card: the sweep table and the histogram."""
    return osm_filter_tables(datasets) + ([osm_filter_paths()["histogram"]] if "osm" in datasets else [])
