"""Snakemake-free helpers of the workflow: the config choices and dataset paths that ``rules/*.smk``
wire, and the logging of the thin entry points in ``workflow_scripts/``."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml


def canonical(value: Any) -> Any:
    """``value`` with every mapping's keys sorted, recursively: Snakemake compares a rule's params by
    their text, so reordering keys in the YAML must not count as a changed setting."""
    if isinstance(value, Mapping):
        return {key: canonical(value[key]) for key in sorted(value)}
    if isinstance(value, (list, tuple)):
        return [canonical(item) for item in value]
    return value


def schema_enum(schema: str | os.PathLike[str], *keys: str) -> list[str]:
    """The values config key ``keys`` (nested section names) may take, as its schema's ``enum`` lists
    them (for a list-valued key, its items' enum): the schema is the one place they are written."""
    node = yaml.safe_load(Path(schema).read_text())
    for key in keys:
        node = node["properties"][key]
    return list(node.get("items", node)["enum"])


def schema_sections(schema: str | os.PathLike[str]) -> list[str]:
    """The top-level keys of a section's schema, in the order it lists them."""
    return list(yaml.safe_load(Path(schema).read_text())["properties"])


def config_errors(values: Mapping[str, Any], schema: str | os.PathLike[str], where: str = "config") -> list[str]:
    """Every way ``values`` breaks ``schema``, one short line each, named by its full key
    (``config.similarity.train.steps: 0 is less than the minimum of 1``), in key order.

    Snakemake's own message quotes the whole schema (hundreds of lines for an unknown key) and names
    keys relative to the section; this is what the workflow shows instead.
    """
    validator = jsonschema.Draft202012Validator(yaml.safe_load(Path(schema).read_text()))
    errors = sorted(validator.iter_errors(values), key=lambda err: [str(k) for k in err.absolute_path])
    return [".".join([where, *map(str, err.absolute_path)]) + f": {err.message}" + _alternatives(err) for err in errors]


def _alternatives(err: jsonschema.ValidationError) -> str:
    """Why each alternative of a oneOf/anyOf failed (``source``: a name or a mapping per dataset)."""
    reasons = sorted({sub.message for sub in err.context or []})
    return f" ({'; '.join(reasons)})" if reasons else ""


def setting_conflicts(config: Mapping[str, Any]) -> list[str]:
    """Settings each valid alone that cannot work together, one line each naming both keys: a training
    crop larger than the synthetic tiles it is cut from, a patch larger than the epitome it is matched
    against. Checked when the workflow loads rather than inside a job hours later."""
    problems = []
    tiles = config.get("synthetic", {}) if config.get("source") == "synthetic" else {}
    crops = [("cromss", config.get("cromss", {}), config.get("cromss", {}).get("crop_size")),
             ("similarity.train", config.get("similarity", {}), config.get("similarity", {}).get("train", {}).get("crop_size"))]
    for key, section, crop in crops:
        dataset = section.get("dataset")
        tile = tiles.get(dataset, {}).get("tile_size")
        if crop is not None and tile is not None and crop > tile:
            problems.append(f"config.{key}.crop_size: {crop} is larger than config.synthetic.{dataset}.tile_size {tile}")
    for name, stage in config.get("epitome", {}).items():
        if not isinstance(stage, Mapping) or "epitome" not in stage:
            continue
        side = stage["epitome"].get("side")
        patches = [("epitome.patch_sizes", p) for p in stage["epitome"].get("patch_sizes", [])]
        if "patch_size" in stage.get("embed", {}):
            patches.append(("embed.patch_size", stage["embed"]["patch_size"]))
        for key, patch in patches:
            if side is not None and patch > side:
                problems.append(f"config.epitome.{name}.{key}: {patch} is larger than the epitome "
                                f"(config.epitome.{name}.epitome.side {side})")
    return problems


def one_of(choices: Iterable[str]) -> str:
    """A wildcard constraint that matches exactly one of ``choices`` (nothing when there are none)."""
    choices = list(choices)
    return "|".join(re.escape(choice) for choice in choices) if choices else "(?!)"


def dataset_sources(source: str | Mapping[str, str], datasets: Iterable[str]) -> dict[str, str]:
    """Each dataset's source from ``config.source``: one name for all, or a mapping per dataset
    (a dataset it leaves out is ``synthetic``)."""
    if isinstance(source, str):
        return {d: source for d in datasets}
    return {d: source.get(d, "synthetic") for d in datasets}


def dataset_index(dataset: str) -> str:
    """A dataset's index (one row per sample) in the common layout of ``results/data``."""
    return f"results/data/{dataset}/index.csv"


def dataset_meta(dataset: str) -> str:
    """A dataset's description (layers, bands, classes) beside its index."""
    return f"results/data/{dataset}/dataset.json"


def denoised_dataset(dataset: str) -> str:
    """The dataset that self-denoising (rules/similarity.smk) makes of ``dataset``'s noisy labels."""
    return f"{dataset}_denoised"


def job_resources(stage: Mapping[str, Any], processes: int = 1) -> dict[str, Any]:
    """A training rule's ``resources:`` from its stage's config section (``resources: **job_resources(X)``).

    ``mem_mb`` and ``runtime`` always; with ``gpu`` > 0 also ``gpu``, ``cpus_per_gpu`` and ``gpu_model``
    (when set) -- the SLURM executor plugin's own names, which it turns into ``--gpus`` and
    ``--cpus-per-gpu``, and which a workstation caps with ``--resources gpu=N``. A data-parallel job
    of ``processes`` > 1 asks for that many tasks (one GPU each on GPUs, ``nodes`` when set) and
    starts them itself through ``srun`` (the ``mpi`` resource): the plugin would otherwise run the
    job inside a one-task step that leaves no room for another.
    """
    resources: dict[str, Any] = {"mem_mb": int(stage["mem_mb"]), "runtime": int(stage["runtime"])}
    gpus = int(stage.get("gpu", 0))
    if gpus:
        resources["gpu"] = gpus
        resources["cpus_per_gpu"] = int(stage["cpus_per_gpu"])
        if stage.get("gpu_model"):
            resources["gpu_model"] = str(stage["gpu_model"])
    if processes > 1:
        if gpus and gpus != processes:
            raise ValueError(
                f"gpu is {gpus} but processes is {processes}: a data-parallel job runs one process per GPU"
            )
        resources.update(mpi="srun", tasks=processes)
        if gpus:
            resources["tasks_per_gpu"] = 1
        if int(stage.get("nodes", 1)) > 1:
            resources["nodes"] = int(stage["nodes"])
    return resources


@contextlib.contextmanager
def logged(log_path: str | os.PathLike[str], level: int = logging.INFO) -> Iterator[logging.Logger]:
    """Send logging *and* stderr (tqdm progress bars, warnings) of a rule to its ``log:`` file.

    A failure is written to the log with its traceback before it propagates, so
    ``logs/<rule>/<wildcards>.log`` always says why a job died.
    """
    path = Path(log_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", buffering=1) as stream:
        handler = logging.StreamHandler(stream)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root = logging.getLogger()
        root.addHandler(handler)
        old_level = root.level
        root.setLevel(level)
        log = logging.getLogger("eolabels")
        try:
            with contextlib.redirect_stderr(stream):
                yield log
        except BaseException:
            log.exception("rule failed")
            raise
        finally:
            root.removeHandler(handler)
            root.setLevel(old_level)
            sys.stderr.flush()
