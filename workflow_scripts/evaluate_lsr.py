"""Snakemake entry point of rule evaluate_lsr: unpack `snakemake`, call the library."""
from eolabels.epitome.stages import evaluate_lsr
from eolabels.workflow import logged

with logged(snakemake.log[0]):
    evaluate_lsr(
        "lsr", snakemake.input.index.rsplit("/", 1)[0], snakemake.params.reading, snakemake.params.table,
        dict(zip(snakemake.params.variants, snakemake.input.predictions)), True, snakemake.params.preview_tiles,
        snakemake.output.table, snakemake.output.markdown, snakemake.output.figure,
        "Label super-resolution of the lsr tiles (per tile and pooled over all tiles)",
    )
