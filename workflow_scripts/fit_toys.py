"""Snakemake entry point of rule fit_toys: unpack `snakemake`, call the library."""
from eolabels.similarity.stages import toy_stage
from eolabels.workflow import logged

with logged(snakemake.log[0]):
    toy_stage(
        snakemake.params.toy,
        snakemake.params.seed,
        snakemake.output.table,
        snakemake.output.markdown,
        {"soft": snakemake.output.soft, "hard_t0.9": snakemake.output.hard},
        threads=snakemake.threads,
    )
