"""Snakemake entry point of rule denoise_labels: unpack `snakemake`, call the library."""
from pathlib import Path

from eolabels.similarity.stages import DenoiseOutputs, denoise_stage
from eolabels.workflow import logged

with logged(snakemake.log[0]):
    out = snakemake.output
    denoise_stage(
        dataset_root=Path(snakemake.input.index).parent,
        heldout_root=Path(snakemake.input.heldout_index).parent,
        outputs=DenoiseOutputs(
            rounds=out.rounds, details=out.details, table=out.table, markdown=out.markdown, figure=out.figure,
            dataset=Path(out.index).parent,
        ),
        train=snakemake.params.train,
        denoise=snakemake.params.denoise,
        seed=snakemake.params.seed,
        heldout_split=snakemake.params.heldout_split,
        threads=snakemake.threads,
        device=snakemake.params.device,
    )
