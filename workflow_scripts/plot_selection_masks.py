"""Snakemake entry point of rule plot_selection_masks: unpack `snakemake`, call the library."""
from pathlib import Path

from eolabels.cromss.stages import selection_mask_figure
from eolabels.workflow import logged

with logged(snakemake.log[0]):
    selection_mask_figure(
        checkpoint=snakemake.input.checkpoint,
        dataset_dir=Path(snakemake.input.index).parent,
        figure=snakemake.output[0],
        variant=snakemake.wildcards.pretrain_variant,
        bands=snakemake.wildcards.s2_bands,
        settings=snakemake.params.settings,
        seed=snakemake.params.seed,
        locations=snakemake.params.locations,
    )
