"""Which runs, settings and paths rules/pretrain.smk wires from the ``cromss:`` config section.

Kept out of the Snakefile and free of Snakemake (as :mod:`eolabels.epitome.wiring`), so the wiring
itself is unit-tested: the rule params carry exactly the training settings, which is what makes a
changed setting re-run the pretraining jobs and a changed job size re-run nothing.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, NamedTuple, Sequence

import yaml

JOB_KEYS = frozenset({
    "dataset", "label_source", "variants", "bands", "threads", "mem_mb", "runtime", "figure_locations",
})
"""Settings that only pick, place or size jobs; every other key of the section is a training setting."""


class SchemaChoices(NamedTuple):
    """Every pretraining variant and S2 band set the section's schema allows (its enums)."""

    variants: list[str]
    band_sets: list[str]


def schema_choices(schema: str | os.PathLike[str]) -> SchemaChoices:
    """The variant names and band sets listed in ``config/schemas/cromss.yaml``, the one place they live."""
    properties = yaml.safe_load(Path(schema).read_text())["properties"]
    return SchemaChoices(properties["variants"]["items"]["enum"], properties["bands"]["items"]["enum"])


def pretrain_runs(section: Mapping[str, Any], datasets: Sequence[str]) -> list[str]:
    """The runs as ``<variant>_<bands>``, none when the pretraining dataset is not generated.

    s1 ignores the S2 bands, so it runs once (with the first band set).
    """
    if section["dataset"] not in datasets:
        return []
    return [
        f"{variant}_{bands}"
        for variant in section["variants"]
        for bands in (section["bands"][:1] if variant == "s1" else section["bands"])
    ]


def fusion_runs(runs: Sequence[str]) -> list[str]:
    """The runs with two modalities (those that have cross-modal selection masks to show)."""
    return [run for run in runs if not run.startswith(("s1_", "s2_"))]


def training_settings(section: Mapping[str, Any]) -> dict[str, Any]:
    """The training settings of every run, sorted so that reordering the YAML re-runs nothing."""
    return {key: value for key, value in sorted(section.items()) if key not in JOB_KEYS}


def pretrain_data(section: Mapping[str, Any]) -> str:
    """The dataset whose labels are pretrained on: the dataset itself or its self-denoised twin
    (rules/similarity.smk)."""
    return section["dataset"] + ("_denoised" if section["label_source"] == "dw_denoised" else "")


def pretrain_root(section: Mapping[str, Any]) -> str:
    """The runs' folder; the two label sources never share one (nor a last.ckpt to resume from)."""
    return "results/pretrain" if section["label_source"] == "dw" else "results/pretrain_dw_denoised"
