"""Which runs, settings and paths rules/pretrain.smk wires from the ``cromss:`` config section.

Kept out of the Snakefile and free of Snakemake (as :mod:`eolabels.epitome.wiring`), so the wiring
itself is unit-tested: the rule params carry exactly the training settings, which is what makes a
changed setting re-run the pretraining jobs and a changed job size re-run nothing.
"""

from __future__ import annotations

import os
from typing import Any, Mapping, NamedTuple, Sequence

from eolabels.finetune.tasks import task
from eolabels.workflow import dataset_index, denoised_dataset, one_of, schema_enum

JOB_KEYS = frozenset({
    "dataset", "label_source", "variants", "bands", "threads", "mem_mb", "runtime", "figure_locations",
    "gpu", "gpu_model", "cpus_per_gpu", "nodes",
})
"""Settings that only pick, place or size jobs; every other key of the section is a training setting."""


class SchemaChoices(NamedTuple):
    """Every pretraining variant and S2 band set the section's schema allows (its enums)."""

    variants: list[str]
    band_sets: list[str]


def schema_choices(schema: str | os.PathLike[str]) -> SchemaChoices:
    """The variant names and band sets listed in ``config/schemas/cromss.yaml``, the one place they live."""
    return SchemaChoices(schema_enum(schema, "variants"), schema_enum(schema, "bands"))


def run_name(variant: str, bands: str) -> str:
    """A pretraining run's name, ``<variant>_<bands>``: its folder, its logs and the audit wildcard."""
    return f"{variant}_{bands}"


def split_run(run: str, choices: SchemaChoices) -> tuple[str, str]:
    """The (variant, band set) of a run name, the inverse of :func:`run_name`.

    Variant names contain ``_`` themselves (``cromss_midF``), so the name is looked up among every
    pair the schema allows rather than cut at an underscore.
    """
    pairs = {run_name(variant, bands): (variant, bands) for variant in choices.variants for bands in choices.band_sets}
    if run not in pairs:
        raise ValueError(f"{run!r} is no pretraining run: expected <variant>_<bands>, one of {sorted(pairs)}")
    return pairs[run]


def run_pattern(choices: SchemaChoices) -> str:
    """The wildcard constraint of a run name: one variant and one band set of the schema."""
    return run_name(f"({one_of(choices.variants)})", f"({one_of(choices.band_sets)})")


def pretrain_pairs(section: Mapping[str, Any], datasets: Sequence[str]) -> list[tuple[str, str]]:
    """The runs as (variant, band set), none when the pretraining dataset is not generated.

    s1 ignores the S2 bands, so it runs once (with the first band set).
    """
    if section["dataset"] not in datasets:
        return []
    return [
        (variant, bands)
        for variant in section["variants"]
        for bands in (section["bands"][:1] if variant == "s1" else section["bands"])
    ]


def pretrain_runs(section: Mapping[str, Any], datasets: Sequence[str]) -> list[str]:
    """The runs' names (:func:`run_name`) in the order of :func:`pretrain_pairs`."""
    return [run_name(variant, bands) for variant, bands in pretrain_pairs(section, datasets)]


def fusion_runs(runs: Sequence[str]) -> list[str]:
    """The runs with two modalities (those that have cross-modal selection masks to show)."""
    return [run for run in runs if not run.startswith(("s1_", "s2_"))]


def training_settings(section: Mapping[str, Any]) -> dict[str, Any]:
    """The training settings of every run, sorted so that reordering the YAML re-runs nothing."""
    return {key: value for key, value in sorted(section.items()) if key not in JOB_KEYS}


def pretrain_data(section: Mapping[str, Any]) -> str:
    """The dataset whose labels are pretrained on: the dataset itself or its self-denoised twin
    (rules/similarity.smk)."""
    dataset = section["dataset"]
    return denoised_dataset(dataset) if section["label_source"] == "dw_denoised" else dataset


def dw_test_inputs(section: Mapping[str, Any], datasets: Sequence[str]) -> list[str]:
    """The DW dataset's index when each run scores its branches on the DW test split (Fig. 8 a,b):
    with ``dw_test_every`` set and the DW dataset in the run; a run without it (e.g. the real-scene
    configs) pretrains without those scores. The rules mark it ``ancient``: rebuilding the DW
    dataset must not retrain every encoder."""
    dw = task("dw").dataset
    return [dataset_index(dw)] if section["dw_test_every"] and dw in datasets else []


def pretrain_root(section: Mapping[str, Any]) -> str:
    """The runs' folder; the two label sources never share one (nor a last.ckpt to resume from)."""
    return "results/pretrain" if section["label_source"] == "dw" else "results/pretrain_dw_denoised"


def run_dir(section: Mapping[str, Any], run: str) -> str:
    """The folder of one run (``run`` may be a wildcard pattern such as ``{pretrain_variant}_{s2_bands}``)."""
    return f"{pretrain_root(section)}/{run}"


def final_checkpoint_name(section: Mapping[str, Any]) -> str:
    """The file name of a run's final epoch checkpoint (see :func:`final_checkpoint`)."""
    return f"epoch={section['epochs'] - 1:03d}.ckpt"


def smoothing_setting_factors(setting: str) -> list[float]:
    """``ls0.2-0`` → [0.2, 0.0]: the [beta, alpha] of a label-smoothing run name."""
    beta, sep, alpha = setting.removeprefix("ls").partition("-")
    try:
        factors = [float(beta), float(alpha)]
    except ValueError:
        factors = []
    if not setting.startswith("ls") or not sep or not factors or not all(0 <= f <= 1 for f in factors):
        raise ValueError(f"label-smoothing setting {setting!r}: expected ls<beta>-<alpha> with both in [0, 1]")
    return factors


def with_smoothing(settings: Mapping[str, Any], setting: str) -> dict[str, Any]:
    """Training settings with the label-smoothing factors of ``setting`` (Table VI's runs)."""
    smoothing = {**settings["label_smoothing"], "factors": smoothing_setting_factors(setting)}
    return {**settings, "label_smoothing": smoothing}


def final_checkpoint(section: Mapping[str, Any], run: str) -> str:
    """The final epoch's full checkpoint of a run (the authors' naming), which audits and figures read.

    last.ckpt stays undeclared, so that a killed job resumes from it instead of Snakemake deleting it
    as an incomplete output. The name is ``eolabels.training.epoch_checkpoint_name``'s, spelled out
    here so that building the DAG does not import torch.
    """
    return f"{run_dir(section, run)}/{final_checkpoint_name(section)}"


def pretrain_tables(section: Mapping[str, Any], datasets: Sequence[str]) -> list[str]:
    """The stage's result table (for the summary report), when any run is planned."""
    return ["results/tables/pretraining.csv"] if pretrain_runs(section, datasets) else []


def pretrain_targets(section: Mapping[str, Any], datasets: Sequence[str]) -> list[str]:
    """What ``all`` builds of the stage: every run's encoders and curves, the fusion runs' selection
    masks, and the table."""
    runs = pretrain_runs(section, datasets)
    return (
        [f"{run_dir(section, run)}/encoders.pt" for run in runs]
        + [f"{run_dir(section, run)}/curves.png" for run in runs]
        + [f"{run_dir(section, run)}/selection_masks.png" for run in fusion_runs(runs)]
        + pretrain_tables(section, datasets)
    )
