"""Snakemake entry point of rule evaluate_lsr: unpack `snakemake`, call the library."""
from eolabels.epitome.stages import TableOutputs, evaluate_lsr
from eolabels.workflow import logged

with logged(snakemake.log[0]):
    out = snakemake.output
    evaluate_lsr(
        dataset="lsr",
        root=snakemake.input.index.rsplit("/", 1)[0],
        reading=snakemake.params.reading,
        table=snakemake.params.table,
        predictions=dict(zip(snakemake.params.variants, snakemake.input.predictions)),
        per_tile=True,
        preview_tiles=snakemake.params.preview_tiles,
        title="Label super-resolution of the lsr tiles (per tile and pooled over all tiles)",
        outputs=TableOutputs(table=out.table, markdown=out.markdown, figure=out.figure),
    )
