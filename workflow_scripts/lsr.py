"""Snakemake entry point of rule lsr: unpack `snakemake`, call the library."""
from eolabels.epitome.stages import lsr
from eolabels.workflow import logged

with logged(snakemake.log[0]):
    lsr(snakemake.input.lrmap, snakemake.params.em, snakemake.params.seed, snakemake.threads, snakemake.output.probs)
