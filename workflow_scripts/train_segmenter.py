"""Snakemake entry point of rule train_segmenter: unpack `snakemake`, call the library."""
from pathlib import Path

from eolabels.similarity.stages import train_stage
from eolabels.workflow import logged

with logged(snakemake.log[0]):
    train_stage(
        Path(snakemake.input.index).parent,
        Path(snakemake.input.heldout_index).parent,
        snakemake.output.model,
        snakemake.output.metrics,
        snakemake.params.train,
        seed=snakemake.params.seed,
        heldout_split=snakemake.params.heldout_split,
        threads=snakemake.threads,
        device=snakemake.params.device,
        withheld_season=snakemake.params.withheld_season,
    )
