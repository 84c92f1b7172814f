"""Snakemake entry point of rule tabulate_pretraining: unpack `snakemake`, call the library (torch-free)."""
from eolabels.cromss.report import tabulate_pretraining
from eolabels.workflow import logged

with logged(snakemake.log[0]):
    tabulate_pretraining(list(snakemake.input), snakemake.output.table, snakemake.output.markdown)
