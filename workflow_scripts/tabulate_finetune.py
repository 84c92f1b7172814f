"""Snakemake entry point of the fine-tuning tables: Table II–IV per task, Table V and VI over tasks."""
from eolabels.finetune.report import tabulate_ablation, tabulate_smoothing, tabulate_task
from eolabels.workflow import logged

with logged(snakemake.log[0]):
    out = snakemake.output
    which = snakemake.wildcards.get("finetune_summary")
    if which is None:
        tabulate_task(snakemake.input, snakemake.params.modes, out.table, out.markdown, out.runs)
    elif which == "ablation":
        tabulate_ablation(snakemake.input, snakemake.params.modes, out.table, out.markdown)
    else:
        tabulate_smoothing(snakemake.input, snakemake.params.modes, snakemake.params.settings, out.table,
                           out.markdown)
