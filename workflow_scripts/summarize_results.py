"""Snakemake entry point of rule summarize_results: unpack `snakemake`, call the library."""
from eolabels.report.summary import write_summary
from eolabels.workflow import logged

with logged(snakemake.log[0]):
    write_summary(
        snakemake.input.cards, snakemake.output.markdown, snakemake.output.table, tables=snakemake.input.tables
    )
