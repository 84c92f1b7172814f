"""Which rounds, inputs and targets rules/align.smk wires from the ``alignment:`` config section
(Snakemake-free, so it is unit-tested)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from eolabels.data.wiring import OSM_JOINED
from eolabels.workflow import dataset_index, dataset_meta

TABLE = "results/tables/alignment.csv"


def aligned_dataset(dataset: str) -> str:
    """The dataset the alignment stage makes of ``dataset``'s misregistered maps (its last round)."""
    return f"{dataset}_aligned"


def runs_alignment(section: Mapping[str, Any], datasets: Sequence[str]) -> bool:
    """Whether ``all`` builds the stage: it is enabled and its input dataset is generated."""
    return section["enabled"] and section["dataset"] in datasets


def alignment_input(dataset: str, filtered: bool) -> str:
    """The dataset the rounds read: for ``osm`` labels that go through the OSM↔DW filter (``filtered``;
    generated or fetched for the DW tiles) their θ = 0 join with the DW tiles, so the alignment runs on
    OSM as is, before the filter, and the filter on its output (spec §5.c); else ``dataset`` itself
    (an imported, already-filtered osm set)."""
    return OSM_JOINED if dataset == "osm" and filtered else dataset


def round_dir(round_number: int | str) -> str:
    """Folder of round ``r`` (1-based): ``networks/``, ``dataset/`` (maps ``D_r``), fields, metrics."""
    return f"results/alignment/round{round_number}"


def round_inputs(dataset: str, round_number: int) -> dict[str, str]:
    """What round ``r`` reads: the input dataset (:func:`alignment_input`), and for r > 1 the maps
    ``D_(r-1)`` of the round before."""
    inputs = {"index": dataset_index(dataset), "meta": dataset_meta(dataset)}
    if round_number > 1:
        inputs["previous"] = f"{round_dir(round_number - 1)}/dataset/index.csv"
    return inputs


def table_inputs(section: Mapping[str, Any], dataset: str) -> dict[str, Any]:
    """What the table rule reads: the input dataset (:func:`alignment_input`) and every round's metrics
    and maps."""
    rounds = range(1, section["rounds"] + 1)
    return {
        "index": dataset_index(dataset),
        "meta": dataset_meta(dataset),
        "metrics": [f"{round_dir(r)}/metrics.json" for r in rounds],
        "rounds": [f"{round_dir(r)}/dataset/index.csv" for r in rounds],
        "neighbours": [f"{round_dir(r)}/neighbours.npz" for r in rounds],
        "networks": f"{round_dir(section['rounds'])}/networks",
    }


def alignment_tables(section: Mapping[str, Any], datasets: Sequence[str]) -> list[str]:
    """The stage's result table (for the summary report), when it runs."""
    return [TABLE] if runs_alignment(section, datasets) else []


def alignment_targets(section: Mapping[str, Any], datasets: Sequence[str]) -> list[str]:
    """What ``all`` builds of the stage: its table, figures and the aligned dataset."""
    if not runs_alignment(section, datasets):
        return []
    return alignment_tables(section, datasets) + [
        "results/alignment/threshold_curves.png",
        "results/alignment/tile.png",
        "results/alignment/similarity_histogram.png",
        dataset_index(aligned_dataset(section["dataset"])),
    ]
