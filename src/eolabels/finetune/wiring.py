"""Which rows, inputs, settings and targets rules/finetune.smk wires from the ``finetune:`` section.

Free of Snakemake (as the other stages' wiring), so it is unit-tested.  A row is (task, input,
encoder source): ``input`` is ``s1`` or ``s2_<bands>``; a source is ``random``, a pretraining variant
(its S1 or S2 branch, of the run with the input's band set; S1 inputs use the first band set's run),
``cromss_midF-ls<beta>-<alpha>`` (Table VI's label-smoothing runs), ``<variant>-denoised`` (pretrained
on the self-denoised labels) or ``ext-<name>`` (a weight file the user lists).  A row's params hold
only what that row's runs depend on, so changing one task's framework re-runs that task's rows only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from eolabels.cromss.wiring import run_dir, run_name
from eolabels.finetune.tasks import TASKS
from eolabels.workflow import dataset_index, dataset_meta

JOB_KEYS = frozenset({
    "tasks", "inputs", "sources", "smoothing", "denoised", "external", "frameworks", "model_kwargs",
    "crop_size", "threads", "mem_mb", "runtime", "figure_samples", "figure_sources", "gpu", "gpu_model", "cpus_per_gpu",
    "nodes",
})
"""Keys that pick or size jobs, or that each row resolves for its own task (frameworks, crops)."""
SMOOTHING_VARIANT = "cromss_midF"  # Table VI pretrains CromSS-midF with each smoothing setting
VARIANT_MODALITIES = {"s1": ("s1",), "s2": ("s2",), "midF": ("s1", "s2"), "lateF": ("s1", "s2"),
                      "cromss_midF": ("s1", "s2"), "cromss_lateF": ("s1", "s2")}


class Row(NamedTuple):
    task: str
    input: str
    source: str

    @property
    def dir(self) -> str:
        return f"results/finetune/{self.task}/{self.input}/{self.source}"


def smoothing_name(factors: Sequence[float]) -> str:
    """``[0.15, 0.05]`` → ``ls0.15-0.05``: a label-smoothing setting (β, α) in a path."""
    beta, alpha = (float(f) for f in factors)
    return f"ls{beta:g}-{alpha:g}"


def smoothing_run_dir(setting: str, bands: str) -> str:
    """The folder of Table VI's pretraining run of ``setting`` (``ls<beta>-<alpha>``)."""
    return f"results/pretrain_smoothing/{setting}/{run_name(SMOOTHING_VARIANT, bands)}"


def denoised_run_dir(variant: str, bands: str) -> str:
    """The folder of a pretraining run on the self-denoised labels (rules/pretrain.smk's second root)."""
    return f"results/pretrain_dw_denoised/{run_name(variant, bands)}"


def inputs_of(section: Mapping[str, Any], cromss: Mapping[str, Any]) -> list[str]:
    """The task inputs: ``s1`` and ``s2_<bands>`` for each pretraining band set."""
    out = []
    for modality in section["inputs"]:
        out += ["s1"] if modality == "s1" else [f"s2_{bands}" for bands in cromss["bands"]]
    return out


def _main_smoothing(cromss: Mapping[str, Any]) -> str | None:
    factors = cromss["label_smoothing"]["factors"]
    return smoothing_name(factors) if len(factors) == 2 and cromss["label_smoothing"]["prior"] != "none" else None


def main_smoothing_row(section: Mapping[str, Any], cromss: Mapping[str, Any]) -> str | None:
    """The Table VI setting the main CromSS-midF row already is (same labels, same smoothing), if any."""
    setting = _main_smoothing(cromss)
    listed = {smoothing_name(f) for f in section["smoothing"]}
    if setting in listed and SMOOTHING_VARIANT in section["sources"] and SMOOTHING_VARIANT in cromss["variants"] \
            and cromss["label_source"] == "dw":
        return setting
    return None


def smoothing_table_rows(section: Mapping[str, Any], cromss: Mapping[str, Any], grid: Sequence[Row]
                         ) -> dict[Row, str]:
    """Table VI's rows and the setting each stands for (the main CromSS-midF row for its own setting)."""
    out = {r: r.source.split("-", 1)[1] for r in grid if r.source.startswith(f"{SMOOTHING_VARIANT}-ls")}
    served = main_smoothing_row(section, cromss)
    if out and served:
        first = f"s2_{cromss['bands'][0]}"
        out.update({r: served for r in grid if r.source == SMOOTHING_VARIANT and r.input == first})
    return out


def source_file(source: str, ft_input: str, section: Mapping[str, Any], cromss: Mapping[str, Any]) -> str | None:
    """The weight file a row's source reads (None for random init)."""
    bands = ft_input.partition("_")[2] or cromss["bands"][0]
    if source == "random":
        return None
    if source.startswith("ext-"):
        return str(external_entry(section, source[4:])["path"])
    if source.startswith(f"{SMOOTHING_VARIANT}-ls"):
        setting = source[len(SMOOTHING_VARIANT) + 1:]
        return f"{smoothing_run_dir(setting, bands)}/encoders.pt"
    if source.endswith("-denoised"):
        return f"{denoised_run_dir(source[:-len('-denoised')], bands)}/encoders.pt"
    return f"{run_dir(cromss, run_name(source, bands))}/encoders.pt"


def external_entry(section: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    for entry in section["external"]:
        if entry["name"] == name:
            return entry
    raise ValueError(f"no external encoder named {name!r} in finetune.external")


def source_kind(source: str, section: Mapping[str, Any]) -> tuple[str, str | None]:
    """(kind, tag) of :class:`eolabels.finetune.encoders.EncoderSource` for a row's source."""
    if source == "random":
        return "random", None
    if source.startswith("ext-"):
        entry = external_entry(section, source[4:])
        return entry["kind"], entry.get("tag")
    return "eolabels", None


def rows(section: Mapping[str, Any], cromss: Mapping[str, Any], datasets: Sequence[str],
         denoised_available: bool) -> list[Row]:
    """Every row of the grid whose task's dataset is generated and whose pretraining exists."""
    pretraining = cromss["dataset"] in datasets
    out: list[Row] = []
    for task_name in section["tasks"]:
        if TASKS[task_name].dataset not in datasets:
            continue
        for ft_input in inputs_of(section, cromss):
            modality = ft_input.partition("_")[0]
            first_s2 = ft_input == f"s2_{cromss['bands'][0]}"
            sources = ["random"]
            if pretraining:
                sources += [v for v in section["sources"]
                            if v in cromss["variants"] and modality in VARIANT_MODALITIES[v]]
                if first_s2:
                    served = main_smoothing_row(section, cromss)
                    sources += [f"{SMOOTHING_VARIANT}-{smoothing_name(f)}" for f in section["smoothing"]
                                if smoothing_name(f) != served]
                    if denoised_available and cromss["label_source"] == "dw":
                        sources += [f"{v}-denoised" for v in section["denoised"]]
            sources += [f"ext-{e['name']}" for e in section["external"] if e["input"] == ft_input]
            out += [Row(task_name, ft_input, s) for s in dict.fromkeys(sources)]
    return out


def check_external(section: Mapping[str, Any]) -> list[str]:
    """One message per listed external weight file that does not exist (a DAG-time error)."""
    return [f"finetune.external row {e['name']!r}: weight file not found: {e['path']}"
            for e in section["external"] if not Path(e["path"]).is_file()]


def row_settings(section: Mapping[str, Any], task_name: str) -> dict[str, Any]:
    """The settings one row's runs depend on: the shared ones plus its task's framework, crop and
    model arguments, sorted so that reordering the YAML re-runs nothing."""
    framework = section["frameworks"][task_name]
    settings = {k: v for k, v in sorted(section.items()) if k not in JOB_KEYS}
    settings["frameworks"] = {task_name: framework}
    settings["crop_size"] = {task_name: section["crop_size"][task_name]}
    settings["model_kwargs"] = {framework: dict(section["model_kwargs"].get(framework, {}))}
    return settings


def smoothing_runs(section: Mapping[str, Any], cromss: Mapping[str, Any], grid: Sequence[Row]) -> list[str]:
    """Table VI's pretraining runs the rows need (those not served by the main grid)."""
    needed = {source_file(r.source, r.input, section, cromss) for r in grid if "-ls" in r.source}
    return sorted(p for p in needed if p and p.startswith("results/pretrain_smoothing/"))


def finetune_tables(section: Mapping[str, Any], grid: Sequence[Row]) -> list[str]:
    """Tables II–IV (one per task with rows), V (ablation) and VI (label smoothing)."""
    tasks = list(dict.fromkeys(r.task for r in grid))
    tables = [f"results/tables/finetune_{t}.csv" for t in tasks]
    if tasks:
        tables.append("results/tables/finetune_ablation.csv")
    if any(r.source.startswith(f"{SMOOTHING_VARIANT}-ls") for r in grid):
        tables.append("results/tables/finetune_smoothing.csv")
    return tables


def finetune_targets(section: Mapping[str, Any], grid: Sequence[Row]) -> list[str]:
    """What ``all`` builds of the stage: the tables and, per task, the analysis figures."""
    tasks = list(dict.fromkeys(r.task for r in grid))
    figures = [f"results/finetune/{t}/{name}.png" for t in tasks for name in ("maps", "weight_kl", "bn_kl", "pca")]
    return finetune_tables(section, grid) + figures


def encoder_name(section: Mapping[str, Any], cromss: Mapping[str, Any], source: str) -> str:
    """The smp encoder of a row: the pretraining encoder, or the one a local weight file names."""
    return str(external_entry(section, source[4:])["encoder"]) if source.startswith("ext-") else cromss["encoder"]


def row_inputs(section: Mapping[str, Any], cromss: Mapping[str, Any], task_name: str, ft_input: str,
               source: str) -> dict[str, str]:
    """A row job's inputs: its task's dataset and, unless random, the encoder weight file."""
    data = TASKS[task_name].dataset
    inputs = {"index": dataset_index(data), "meta": dataset_meta(data)}
    weights = source_file(source, ft_input, section, cromss)
    if weights:
        inputs["encoders"] = weights
    return inputs


def source_record(section: Mapping[str, Any], cromss: Mapping[str, Any], source: str, ft_input: str
                  ) -> dict[str, Any]:
    """What a job needs to build the row's EncoderSource and the model's encoder."""
    kind, tag = source_kind(source, section)
    return {"name": source, "kind": kind, "tag": tag, "path": source_file(source, ft_input, section, cromss),
            "encoder": encoder_name(section, cromss, source)}


def task_rows(grid: Sequence[Row], task_name: str) -> list[Row]:
    return [row for row in grid if row.task == task_name]


def figure_rows(section: Mapping[str, Any], grid: Sequence[Row], task_name: str) -> list[Row]:
    """The rows a task's figures show: ``figure_sources`` on its first S2 input (else S1)."""
    rows_of_task = task_rows(grid, task_name)
    if not rows_of_task:
        return []
    shown = next((r.input for r in rows_of_task if r.input.startswith("s2")), rows_of_task[0].input)
    return [r for s in section["figure_sources"] for r in rows_of_task if r.input == shown and r.source == s]


def figure_inputs(section: Mapping[str, Any], cromss: Mapping[str, Any], grid: Sequence[Row], task_name: str
                  ) -> dict[str, Any]:
    """The figure job's inputs: the dataset, the shown rows' fine-tuned weights and encoder files."""
    data = TASKS[task_name].dataset
    shown = figure_rows(section, grid, task_name)
    return {"index": dataset_index(data), "meta": dataset_meta(data),
            "weights": [f"{r.dir}/finetuned.pt" for r in shown],
            "encoders": [f for r in shown if (f := source_file(r.source, r.input, section, cromss))]}


def figure_params(section: Mapping[str, Any], cromss: Mapping[str, Any], grid: Sequence[Row], task_name: str
                  ) -> dict[str, Any]:
    """The shown rows' input and sources, each with the path of its first fine-tuned weights."""
    shown = figure_rows(section, grid, task_name)
    return {"input": shown[0].input if shown else "",
            "rows": [{**source_record(section, cromss, r.source, r.input), "weights": f"{r.dir}/finetuned.pt"}
                     for r in shown]}
