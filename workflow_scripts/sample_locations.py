"""Snakemake entry point of rule sample_locations: unpack `snakemake`, call the library."""
from eolabels.acquisition.stages import sample_sheet
from eolabels.workflow import logged

with logged(snakemake.log[0]):
    sample_sheet(region=snakemake.input.region, out=snakemake.output.sheet, n=snakemake.params.n,
                 seed=snakemake.params.seed)
