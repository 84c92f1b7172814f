"""Snakemake entry point of rule dfc2020_evaluate: unpack `snakemake`, call the library."""
from eolabels.epitome.stages import TableOutputs, evaluate_lsr
from eolabels.workflow import logged

with logged(snakemake.log[0]):
    out, split = snakemake.output, snakemake.params.reading["split"]
    evaluate_lsr(
        dataset="dfc2020",
        root=snakemake.input.index.rsplit("/", 1)[0],
        reading=snakemake.params.reading,
        table=snakemake.params.table,
        predictions=dict(zip(snakemake.params.rows, snakemake.input.predictions)),
        per_tile=False,
        preview_tiles=snakemake.params.preview_tiles,
        title=f"DFC2020 label super-resolution from MODIS IGBP labels ({split} split, pooled)",
        outputs=TableOutputs(table=out.table, markdown=out.markdown, figure=out.figure),
    )
