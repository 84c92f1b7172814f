"""Which config values and files each rule of rules/epitome.smk depends on.

Kept out of the Snakefile (Snakemake's linter wants no functions beside rules) and free of Snakemake,
so the wiring itself is unit-tested: a rule's params carry exactly the settings it uses, which is
what makes a changed setting re-run only the jobs that depend on it.
"""

from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

from eolabels.workflow import canonical, dataset_index, dataset_meta, schema_sections

READING_KEYS = ("image_scale", "bands", "split")
EPITOME_FIGURES = ("means", "usage", "promotion", "loss")
"""The training figures of every epitome (rule train_epitome)."""


def reading_settings(section: Mapping[str, Any]) -> dict[str, Any]:
    """How a dataset's tiles are read: image scaling, and (DFC2020) the bands and the split."""
    return canonical({key: section[key] for key in READING_KEYS if key in section})


def variant_settings(section: Mapping[str, Any], variant: str) -> dict[str, Any]:
    """The subsections one LSR variant uses (naive needs nothing beyond the p(l|c) table)."""
    if variant == "naive":
        return {}
    if variant == "colour":
        return canonical({"colour": section["colour"]})
    if variant == "self_epitomic":
        return canonical({"self_epitomic": section["self_epitomic"], "em": section["em"]})
    if variant == "epitome":
        return canonical({"reconstruct": section["reconstruct"], "patch_size": section["embed"]["patch_size"]})
    raise ValueError(f"unknown LSR variant {variant!r}")


def variant_inputs(dataset: str, variant: str) -> dict[str, str]:
    """Files predict_hr reads: the dataset, and for the epitome variant the epitome and its p(l|s)."""
    inputs = {"index": dataset_index(dataset), "meta": dataset_meta(dataset)}
    if variant == "epitome":
        inputs["epitome"] = f"results/epitome/{dataset}/epitome.pt"
        inputs["probs"] = f"results/epitome/{dataset}/label_probs.pt"
    return inputs


def lsr_datasets(schema: str | os.PathLike[str], datasets: Sequence[str]) -> list[str]:
    """The datasets of ``datasets`` the stage runs on: those with a subsection in its schema
    (``config/schemas/epitome.yaml``), in the schema's order."""
    return [name for name in schema_sections(schema) if name in datasets]


def lsr_table(source: str, local: Mapping[str, Any]) -> str:
    """The LSR table's name, after its data (``source`` is the lsr dataset's): the real Chesapeake
    patches or tiles, or the synthetic world."""
    if source == "local" and "lsr" in local and local["lsr"]["format"] in ("chesapeake_npz", "chesapeake_cvpr_tiles"):
        return "lsr_chesapeake"
    return "lsr_synthetic"


def trains_epitome(dataset_section: Mapping[str, Any]) -> bool:
    """Whether a dataset's epitome is trained: the lsr dataset lists its variants, DFC2020 always needs it."""
    return "epitome" in dataset_section["variants"] if "variants" in dataset_section else True


def epitome_tables(stage_datasets: Sequence[str], table: str) -> list[str]:
    """The stage's result tables (for the summary report): the LSR table and the DFC2020 table."""
    tables = []
    if "lsr" in stage_datasets:
        tables.append(f"results/tables/{table}.csv")
    if "dfc2020" in stage_datasets:
        tables.append("results/tables/dfc2020_lsr.csv")
    return tables


def epitome_targets(section: Mapping[str, Any], stage_datasets: Sequence[str], table: str) -> list[str]:
    """What ``all`` builds of the stage: epitome figures, tables (CSV and Markdown) and comparisons."""
    targets = [
        f"results/epitome/{dataset}/{figure}.png"
        for dataset in stage_datasets
        for figure in EPITOME_FIGURES
        if trains_epitome(section[dataset])
    ]
    if "lsr" in stage_datasets:
        targets += [f"results/tables/{table}.{ext}" for ext in ("csv", "md")]
        targets += ["results/lsr/lsr/comparison.png"]
    if "dfc2020" in stage_datasets:
        targets += [f"results/tables/dfc2020_lsr.{ext}" for ext in ("csv", "md")]
        targets += ["results/lsr/dfc2020/comparison.png", "results/epitome/dfc2020/distilled_loss.png"]
    return targets
