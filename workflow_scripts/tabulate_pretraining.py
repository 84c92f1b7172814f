"""Snakemake entry point of rule tabulate_pretraining: unpack `snakemake`, call the library."""
from eolabels.cromss.stages import pretraining_table
from eolabels.workflow import logged

with logged(snakemake.log[0]):
    pretraining_table(summaries=list(snakemake.input), table=snakemake.output.table, markdown=snakemake.output.markdown)
