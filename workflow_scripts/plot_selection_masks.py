"""Snakemake entry point of rule plot_selection_masks: unpack `snakemake`, call the library."""
from pathlib import Path

from eolabels.cromss.figures import plot_selection_masks
from eolabels.workflow import logged

with logged(snakemake.log[0]):
    plot_selection_masks(
        snakemake.input.checkpoint,
        Path(snakemake.input.index).parent,
        snakemake.output[0],
        snakemake.wildcards.pretrain_variant,
        snakemake.wildcards.s2_bands,
        snakemake.params.settings,
        seed=snakemake.params.seed,
        locations=snakemake.params.locations,
    )
