"""Snakemake entry point of rule denoise_labels: unpack `snakemake`, call the library."""
from pathlib import Path

from eolabels.similarity.stages import denoise_stage
from eolabels.workflow import logged

with logged(snakemake.log[0]):
    denoise_stage(
        Path(snakemake.input.index).parent,
        Path(snakemake.input.heldout_index).parent,
        snakemake.output.rounds,
        Path(snakemake.output.index).parent,
        {"csv": snakemake.output.table, "md": snakemake.output.markdown, "rounds": snakemake.output.details},
        snakemake.output.figure,
        snakemake.params.train,
        snakemake.params.denoise,
        seed=snakemake.params.seed,
        heldout_split=snakemake.params.heldout_split,
        threads=snakemake.threads,
        device=snakemake.params.device,
    )
