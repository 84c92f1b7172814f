"""Snakemake entry point of rule train_segmenter: unpack `snakemake`, call the library."""
from pathlib import Path

from eolabels.similarity.stages import TrainOutputs, train_stage
from eolabels.workflow import logged

with logged(snakemake.log[0]):
    train_stage(
        dataset_root=Path(snakemake.input.index).parent,
        heldout_root=Path(snakemake.input.heldout_index).parent,
        outputs=TrainOutputs(model=snakemake.output.model, metrics=snakemake.output.metrics),
        train=snakemake.params.train,
        seed=snakemake.params.seed,
        heldout_split=snakemake.params.heldout_split,
        withheld_season=snakemake.params.withheld_season,
        threads=snakemake.threads,
        device=snakemake.params.device,
    )
