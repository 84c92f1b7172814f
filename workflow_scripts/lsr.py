"""Snakemake entry point of rule lsr: unpack `snakemake`, call the library."""
from eolabels.epitome.stages import lsr
from eolabels.workflow import logged

with logged(snakemake.log[0]):
    lsr(
        in_lrmap=snakemake.input.lrmap,
        em=snakemake.params.em,
        seed=snakemake.params.seed,
        threads=snakemake.threads,
        out_probs=snakemake.output.probs,
    )
