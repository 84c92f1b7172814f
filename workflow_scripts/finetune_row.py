"""Snakemake entry point of rule finetune_row: unpack `snakemake`, call the library."""
from pathlib import Path

from eolabels.finetune.rows import finetune_row_job
from eolabels.workflow import logged

with logged(snakemake.log[0]):
    finetune_row_job(
        dataset_dir=Path(snakemake.input.index).parent,
        out_dir=Path(snakemake.output.summary).parent,
        summary_path=snakemake.output.summary,
        weights={Path(p).stem: p for p in snakemake.output.weights},
        task_name=snakemake.wildcards.task,
        ft_input=snakemake.wildcards.ft_input,
        source_record=snakemake.params.source,
        settings=snakemake.params.settings,
        seed=snakemake.params.seed,
        device=snakemake.params.device,
        threads=snakemake.threads,
    )
