"""Snakemake entry point of rule dfc2020_ensemble: unpack `snakemake`, call the library."""
from eolabels.epitome.stages import dfc2020_ensemble
from eolabels.workflow import logged

with logged(snakemake.log[0]):
    dfc2020_ensemble(
        snakemake.input.index.rsplit("/", 1)[0], snakemake.params.reading, snakemake.params.colour_classes,
        snakemake.input.colour, snakemake.input.epitome, snakemake.output.index,
    )
