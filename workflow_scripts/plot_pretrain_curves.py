"""Snakemake entry point of rule plot_pretrain_curves: unpack `snakemake`, call the library."""
from eolabels.cromss.stages import pretrain_curves_figure
from eolabels.workflow import logged

with logged(snakemake.log[0]):
    pretrain_curves_figure(metrics=snakemake.input.metrics, summary=snakemake.input.summary, figure=snakemake.output[0])
