"""Snakemake entry point of rule dfc2020_distill: unpack `snakemake`, call the library."""
from eolabels.epitome.stages import dfc2020_distill
from eolabels.workflow import logged

with logged(snakemake.log[0]):
    dfc2020_distill(
        snakemake.input.index.rsplit("/", 1)[0], snakemake.params.reading, snakemake.params.settings,
        snakemake.params.seed, snakemake.params.device, snakemake.threads, snakemake.input.ensemble,
        snakemake.output.index, snakemake.output.model, snakemake.output.loss,
    )
