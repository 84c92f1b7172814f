"""Snakemake entry point of rule train_epitome: unpack `snakemake`, call the library."""
from eolabels.epitome.stages import train_epitome
from eolabels.workflow import logged

with logged(snakemake.log[0]):
    out = snakemake.output
    train_epitome(
        snakemake.wildcards.lsr_dataset, snakemake.input.index.rsplit("/", 1)[0], snakemake.params.reading,
        snakemake.params.settings, snakemake.params.seed, snakemake.params.device, snakemake.threads,
        out.epitome, out.history, out.means, out.usage, out.promotion, out.loss,
    )
