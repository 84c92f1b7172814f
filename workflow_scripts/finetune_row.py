"""Snakemake entry point of rule finetune_row: unpack `snakemake`, call the library."""
from pathlib import Path

from eolabels.finetune.encoders import EncoderSource
from eolabels.finetune.rows import finetune_row
from eolabels.workflow import logged

with logged(snakemake.log[0]):
    record = snakemake.params.source
    row_dir = Path(snakemake.output.summary).parent
    finetune_row(
        dataset_dir=Path(snakemake.input.index).parent,
        out_dir=row_dir,
        summary_path=snakemake.output.summary,
        weights={Path(p).stem: p for p in snakemake.output.weights},
        task_name=snakemake.wildcards.task,
        ft_input=snakemake.wildcards.ft_input,
        source=EncoderSource(record["name"], record["kind"], record["path"], record["tag"]),
        encoder_name=record["encoder"],
        settings=snakemake.params.settings,
        seed=snakemake.params.seed,
        device=snakemake.params.device,
        threads=snakemake.threads,
    )
