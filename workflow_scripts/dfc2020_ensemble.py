"""Snakemake entry point of rule dfc2020_ensemble: unpack `snakemake`, call the library."""
from eolabels.epitome.stages import dfc2020_ensemble
from eolabels.workflow import logged

with logged(snakemake.log[0]):
    dfc2020_ensemble(
        root=snakemake.input.index.rsplit("/", 1)[0],
        reading=snakemake.params.reading,
        colour_classes=snakemake.params.colour_classes,
        in_colour=snakemake.input.colour,
        in_epitome=snakemake.input.epitome,
        out_index=snakemake.output.index,
    )
