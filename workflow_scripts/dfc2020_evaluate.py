"""Snakemake entry point of rule dfc2020_evaluate: unpack `snakemake`, call the library."""
from eolabels.epitome.stages import evaluate_lsr
from eolabels.workflow import logged

with logged(snakemake.log[0]):
    evaluate_lsr(
        "dfc2020", snakemake.input.index.rsplit("/", 1)[0], snakemake.params.reading, snakemake.params.table,
        dict(zip(snakemake.params.rows, snakemake.input.predictions)), False, snakemake.params.preview_tiles,
        snakemake.output.table, snakemake.output.markdown, snakemake.output.figure,
        f"DFC2020 label super-resolution from MODIS IGBP labels ({snakemake.params.reading['split']} split, pooled)",
    )
