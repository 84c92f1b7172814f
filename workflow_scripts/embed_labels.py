"""Snakemake entry point of rule embed_labels: unpack `snakemake`, call the library."""
from eolabels.epitome.stages import embed_labels
from eolabels.workflow import logged

with logged(snakemake.log[0]):
    embed_labels(
        snakemake.wildcards.lsr_dataset, snakemake.input.index.rsplit("/", 1)[0], snakemake.params.reading,
        snakemake.params.table, snakemake.params.settings, snakemake.params.seed, snakemake.threads,
        snakemake.input.epitome, snakemake.output.lrmap,
    )
