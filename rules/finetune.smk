# Downstream fine-tuning (specs/cromss.md §7–8, §10): one job per table row (task × input × encoder
# source) with its frozen / fine-tuned runs and repeats inside, then Tables II–VI and the analysis
# figures; the rows and what `all` builds of them: rules/common.smk and eolabels.finetune.wiring.
from eolabels.finetune.tasks import TASKS
from eolabels.finetune.wiring import row_settings, smoothing_table_rows, source_file, source_kind

FT_ROW = "results/finetune/{task}/{ft_input}/{ft_source}"


def ft_encoder_name(source):
    """The smp encoder of a row: the pretraining encoder, or the one a local weight file names."""
    if source.startswith("ext-"):
        return next(e["encoder"] for e in FINETUNE["external"] if e["name"] == source[4:])
    return CROMSS["encoder"]


def ft_row_inputs(wildcards):
    data = TASKS[wildcards.task].dataset
    inputs = {"index": dataset_index(data), "meta": dataset_meta(data)}
    weights = source_file(wildcards.ft_source, wildcards.ft_input, FINETUNE, CROMSS)
    if weights:
        inputs["encoders"] = weights
    return inputs


def ft_source_record(source, ft_input):
    """What the job needs to build the row's EncoderSource and model encoder."""
    kind, tag = source_kind(source, FINETUNE)
    return {"name": source, "kind": kind, "tag": tag, "path": source_file(source, ft_input, FINETUNE, CROMSS),
            "encoder": ft_encoder_name(source)}


def ft_task_rows(task):
    return [row for row in FINETUNE_ROWS if row.task == task]


def ft_figure_rows(task):
    """The rows the task's figures show: figure_sources present on its figure input."""
    rows = ft_task_rows(task)
    if not rows:
        return []
    figure_input = next((r.input for r in rows if r.input.startswith("s2")), rows[0].input)
    return [r for s in FINETUNE["figure_sources"] for r in rows if r.input == figure_input and r.source == s]


rule finetune_row:
    """One table row: frozen and fine-tuned runs × repeats of an encoder source on a task (resumable)."""
    input:
        unpack(ft_row_inputs),
    output:
        summary=f"{FT_ROW}/summary.json",
        weights=expand("results/finetune/{{task}}/{{ft_input}}/{{ft_source}}/{mode}.pt", mode=FINETUNE["modes"]),
    params:
        settings=lambda w: row_settings(FINETUNE, w.task),
        source=lambda w: ft_source_record(w.ft_source, w.ft_input),
        seed=config["seed"],
        device=config["device"],
    threads: FINETUNE["threads"]
    resources:
        **job_resources(FINETUNE),
    log:
        "logs/finetune_row/{task}/{ft_input}/{ft_source}.log",
    benchmark:
        "benchmarks/finetune_row/{task}/{ft_input}/{ft_source}.tsv"
    conda:
        "../envs/eolabels.yaml"
    script:
        "../workflow_scripts/finetune_row.py"


rule tabulate_finetune_task:
    """Table II (DFC2020), III (DW) or IV (OSM): every row's scores, mean ± std over repeats."""
    input:
        lambda w: [f"{row.dir}/summary.json" for row in ft_task_rows(w.task)],
    output:
        table="results/tables/finetune_{task}.csv",
        runs="results/tables/finetune_{task}_runs.csv",
        markdown=report(
            "results/tables/finetune_{task}.md",
            caption="captions/finetune_table.rst",
            category="Fine-tuning",
            subcategory="tables",
        ),
    params:
        modes=FINETUNE["modes"],
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    log:
        "logs/tabulate_finetune_task/{task}.log",
    benchmark:
        "benchmarks/tabulate_finetune_task/{task}.tsv"
    conda:
        "../envs/eolabels.yaml"
    script:
        "../workflow_scripts/tabulate_finetune.py"


rule tabulate_finetune_summary:
    """Table V (ablation of the pretraining variants) or VI (label smoothing), over every task."""
    input:
        lambda w: [f"{row.dir}/summary.json" for row in (
            FINETUNE_ROWS if w.finetune_summary == "ablation" else smoothing_table_rows(FINETUNE, CROMSS, FINETUNE_ROWS))],
    output:
        table="results/tables/finetune_{finetune_summary}.csv",
        markdown=report(
            "results/tables/finetune_{finetune_summary}.md",
            caption="captions/finetune_summary.rst",
            category="Fine-tuning",
            subcategory="tables",
        ),
    params:
        modes=FINETUNE["modes"],
        # the source of each Table VI row -> its smoothing setting (the main CromSS-midF row stands for its own)
        settings={r.source: s for r, s in smoothing_table_rows(FINETUNE, CROMSS, FINETUNE_ROWS).items()},
    wildcard_constraints:
        finetune_summary="ablation|smoothing",
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    log:
        "logs/tabulate_finetune_summary/{finetune_summary}.log",
    benchmark:
        "benchmarks/tabulate_finetune_summary/{finetune_summary}.tsv"
    conda:
        "../envs/eolabels.yaml"
    script:
        "../workflow_scripts/tabulate_finetune.py"


def ft_figure_inputs(wildcards):
    data = TASKS[wildcards.task].dataset
    rows = ft_figure_rows(wildcards.task)
    inputs = {"index": dataset_index(data), "meta": dataset_meta(data),
              "weights": [f"{r.dir}/finetuned.pt" for r in rows]}
    inputs["encoders"] = [f for r in rows if (f := source_file(r.source, r.input, FINETUNE, CROMSS))]
    return inputs


def ft_figure_params(wildcards):
    rows = ft_figure_rows(wildcards.task)
    return {"input": rows[0].input if rows else "",
            "rows": [{**ft_source_record(r.source, r.input), "weights": f"{r.dir}/finetuned.pt"} for r in rows]}


rule plot_finetune_figures:
    """Segmentation maps (Figs. 6–7), weight and BN-statistics KL (Figs. 12, 8 c,d), PCA (Fig. 13)."""
    input:
        unpack(ft_figure_inputs),
    output:
        maps=report("results/finetune/{task}/maps.png", caption="captions/finetune_maps.rst",
                    category="Fine-tuning", subcategory="figures"),
        weight_kl=report("results/finetune/{task}/weight_kl.png", caption="captions/finetune_weight_kl.rst",
                         category="Fine-tuning", subcategory="figures"),
        bn_kl=report("results/finetune/{task}/bn_kl.png", caption="captions/finetune_bn_kl.rst",
                     category="Fine-tuning", subcategory="figures"),
        pca=report("results/finetune/{task}/pca.png", caption="captions/finetune_pca.rst",
                   category="Fine-tuning", subcategory="figures"),
    params:
        figure=ft_figure_params,
        settings=lambda w: row_settings(FINETUNE, w.task),
        samples=FINETUNE["figure_samples"],
        seed=config["seed"],
    threads: 1
    resources:
        mem_mb=3000,
        runtime=20,
    log:
        "logs/plot_finetune_figures/{task}.log",
    benchmark:
        "benchmarks/plot_finetune_figures/{task}.tsv"
    conda:
        "../envs/eolabels.yaml"
    script:
        "../workflow_scripts/plot_finetune_figures.py"
