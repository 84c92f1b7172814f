"""Snakemake entry point of rule tabulate_alignment: unpack `snakemake`, call the library."""
from pathlib import Path

from eolabels.alignment.stages import TableOutputs, tabulate_stage
from eolabels.workflow import logged

with logged(snakemake.log[0]):
    out = snakemake.output
    tabulate_stage(
        dataset_root=Path(snakemake.input.index).parent,
        metrics=list(snakemake.input.metrics),
        rounds=[Path(p).parent for p in snakemake.input.rounds],
        networks=snakemake.input.networks,
        neighbours=list(snakemake.input.neighbours),
        outputs=TableOutputs(table=out.table, markdown=out.markdown, curves=out.curves, figure=out.figure,
                             histogram=out.histogram, dataset=Path(out.index).parent),
        alignment=snakemake.params.alignment,
        threads=snakemake.threads,
    )
