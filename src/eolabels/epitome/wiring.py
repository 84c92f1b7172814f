"""Which config values and files each rule of rules/epitome.smk depends on.

Kept out of the Snakefile (Snakemake's linter wants no functions beside rules) and free of Snakemake,
so the wiring itself is unit-tested: a rule's params carry exactly the settings it uses, which is
what makes a changed setting re-run only the jobs that depend on it.
"""

from __future__ import annotations

from typing import Any, Mapping

READING_KEYS = ("image_scale", "bands", "split")


def canonical(value: Any) -> Any:
    """``value`` with every mapping's keys sorted, recursively: Snakemake compares params by their
    text, so reordering the YAML must not count as a change (as rules/common.smk does for datasets)."""
    if isinstance(value, Mapping):
        return {key: canonical(value[key]) for key in sorted(value)}
    if isinstance(value, (list, tuple)):
        return [canonical(item) for item in value]
    return value


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
    inputs = {"index": f"results/data/{dataset}/index.csv", "meta": f"results/data/{dataset}/dataset.json"}
    if variant == "epitome":
        inputs["epitome"] = f"results/epitome/{dataset}/epitome.pt"
        inputs["probs"] = f"results/epitome/{dataset}/label_probs.pt"
    return inputs
