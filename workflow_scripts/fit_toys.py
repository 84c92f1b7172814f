"""Snakemake entry point of rule fit_toys: unpack `snakemake`, call the library."""
from eolabels.similarity.stages import ToyOutputs, toy_stage
from eolabels.workflow import logged

with logged(snakemake.log[0]):
    out = snakemake.output
    toy_stage(
        toy=snakemake.params.toy,
        seed=snakemake.params.seed,
        outputs=ToyOutputs(table=out.table, markdown=out.markdown, soft=out.soft, hard=out.hard),
        threads=snakemake.threads,
    )
