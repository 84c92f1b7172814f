"""Snakemake entry point of rule plot_pretrain_curves: unpack `snakemake`, call the library (torch-free)."""
from eolabels.cromss.curves import plot_pretrain_curves
from eolabels.workflow import logged

with logged(snakemake.log[0]):
    plot_pretrain_curves(snakemake.input.metrics, snakemake.input.summary, snakemake.output[0])
