"""Snakemake entry point of rule summarize_results: unpack `snakemake`, call the library."""
from eolabels.report.summary import write_summary
from eolabels.workflow import logged

with logged(snakemake.log[0]):
    write_summary(
        card_paths=snakemake.input.cards,
        out_markdown=snakemake.output.markdown,
        out_csv=snakemake.output.table,
        tables=snakemake.input.tables,
    )
