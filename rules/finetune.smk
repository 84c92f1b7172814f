# Downstream fine-tuning (specs/cromss.md §7–8, §10): one job per table row (task × input × encoder
# source) with its frozen / fine-tuned runs and repeats inside, then Tables II–VI and the analysis
# figures; the rows and what `all` builds of them: rules/common.smk and eolabels.finetune.wiring.
from eolabels.finetune.wiring import (
    figure_inputs,
    figure_params,
    row_inputs,
    row_settings,
    smoothing_table_rows,
    source_record,
    task_rows,
)

FT_ROW = "results/finetune/{task}/{ft_input}/{ft_source}"


rule finetune_row:
    """One table row: frozen and fine-tuned runs × repeats of an encoder source on a task (resumable)."""
    input:
        unpack(lambda w: row_inputs(FINETUNE, CROMSS, w.task, w.ft_input, w.ft_source)),
    output:
        summary=f"{FT_ROW}/summary.json",
        weights=expand("results/finetune/{{task}}/{{ft_input}}/{{ft_source}}/{mode}.pt", mode=FINETUNE["modes"]),
    params:
        settings=lambda w: canonical(row_settings(FINETUNE, w.task)),
        source=lambda w: canonical(source_record(FINETUNE, CROMSS, w.ft_source, w.ft_input)),
        seed=config["seed"],
        device=config["device"],
    threads: FINETUNE["threads"]
    resources:
        **job_resources(FINETUNE, FINETUNE["processes"]),
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
        lambda w: [f"{row.dir}/summary.json" for row in task_rows(FINETUNE_ROWS, w.task)],
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
        settings=canonical({r.source: s for r, s in smoothing_table_rows(FINETUNE, CROMSS, FINETUNE_ROWS).items()}),
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


rule plot_finetune_figures:
    """Segmentation maps (Figs. 6–7), weight and BN-statistics KL (Figs. 12, 8 c,d), PCA (Fig. 13)."""
    input:
        unpack(lambda w: figure_inputs(FINETUNE, CROMSS, FINETUNE_ROWS, w.task)),
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
        figure=lambda w: canonical(figure_params(FINETUNE, CROMSS, FINETUNE_ROWS, w.task)),
        settings=lambda w: canonical(row_settings(FINETUNE, w.task)),
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
