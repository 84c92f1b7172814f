"""Which runs, inputs and targets rules/similarity.smk wires from the ``similarity:`` config section.

Free of Snakemake (as :mod:`eolabels.cromss.wiring`), so the wiring is unit-tested, and free of the
rule files' globals: the audited pretraining runs and their checkpoints come from the same cromss
wiring functions that rules/pretrain.smk uses, whatever order the Snakefile includes the two in.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from eolabels.cromss.wiring import final_checkpoint, pretrain_data, pretrain_pairs, run_name
from eolabels.workflow import dataset_index, dataset_meta

AUDIT_JOB_KEYS = ("variants", "modality")
"""Keys of ``audit_pretrained`` that are no setting of one audit: they pick the jobs and the branch
(the branch is a param of its own)."""


def trains_segmenter(section: Mapping[str, Any], datasets: Sequence[str]) -> bool:
    """Whether the U-Net branch (training, audit, self-denoising) runs: both its datasets are generated."""
    return section["dataset"] in datasets and section["heldout"] in datasets


def training_inputs(section: Mapping[str, Any]) -> dict[str, str]:
    """Index and description of the noisy-label training set and of the held-out truth."""
    return {
        "index": dataset_index(section["dataset"]),
        "meta": dataset_meta(section["dataset"]),
        "heldout_index": dataset_index(section["heldout"]),
        "heldout_meta": dataset_meta(section["heldout"]),
    }


def audited_runs(section: Mapping[str, Any], cromss: Mapping[str, Any], datasets: Sequence[str]) -> list[str]:
    """The pretraining runs whose density is audited: those of the listed variants, when the held-out
    truth is generated too (in the order of the pretraining runs)."""
    if section["heldout"] not in datasets:
        return []
    audited = section["audit_pretrained"]["variants"]
    return [run_name(variant, bands) for variant, bands in pretrain_pairs(cromss, datasets) if variant in audited]


def audit_inputs(section: Mapping[str, Any], cromss: Mapping[str, Any], run: str) -> dict[str, str]:
    """What the audit of one run reads: its final checkpoint, the labels it was pretrained on and the
    held-out truth (``run`` may be a wildcard pattern)."""
    data = pretrain_data(cromss)
    return {
        "checkpoint": final_checkpoint(cromss, run),
        "index": dataset_index(data),
        "meta": dataset_meta(data),
        "heldout_index": dataset_index(section["heldout"]),
        "heldout_meta": dataset_meta(section["heldout"]),
    }


def audit_settings(section: Mapping[str, Any]) -> dict[str, Any]:
    """The settings of one pretrained audit, sorted, without the keys of :data:`AUDIT_JOB_KEYS`."""
    return {key: value for key, value in sorted(section["audit_pretrained"].items()) if key not in AUDIT_JOB_KEYS}


def audit_tables(section: Mapping[str, Any], cromss: Mapping[str, Any], datasets: Sequence[str]) -> list[str]:
    """The audited runs' result tables (for the summary report)."""
    return [f"results/tables/density_audit_pretrain_{run}.csv" for run in audited_runs(section, cromss, datasets)]


def audit_targets(section: Mapping[str, Any], cromss: Mapping[str, Any], datasets: Sequence[str]) -> list[str]:
    """What ``all`` builds of the pretrained audits: each run's table and tile figure."""
    runs = audited_runs(section, cromss, datasets)
    return audit_tables(section, cromss, datasets) + [f"results/similarity/audit_pretrain/{run}/tiles.png" for run in runs]


def similarity_tables(section: Mapping[str, Any], datasets: Sequence[str]) -> list[str]:
    """The toy's table always; the audit and self-denoising tables when the U-Net branch runs."""
    tables = ["results/tables/similarity_toy.csv"]
    if trains_segmenter(section, datasets):
        tables += ["results/tables/density_audit.csv", "results/tables/self_denoising.csv"]
    return tables


def similarity_targets(section: Mapping[str, Any], datasets: Sequence[str]) -> list[str]:
    """What ``all`` builds of the stage (besides the pretrained audits): its tables and main figures."""
    figures = ["toy/density_soft.png"]
    if trains_segmenter(section, datasets):
        figures += ["audit/tiles.png", "denoise/rounds.png"]
    return similarity_tables(section, datasets) + [f"results/similarity/{figure}" for figure in figures]
