"""Snakemake entry point of rule align_round: unpack `snakemake`, call the library."""
from pathlib import Path

from eolabels.alignment.rounds import RoundOutputs
from eolabels.alignment.stages import align_round_stage
from eolabels.workflow import logged

with logged(snakemake.log[0]):
    out = snakemake.output
    align_round_stage(
        dataset_root=Path(snakemake.input.index).parent,
        previous_root=Path(snakemake.input.previous).parent if "previous" in snakemake.input.keys() else None,
        round_number=int(snakemake.wildcards.round),
        outputs=RoundOutputs(networks=out.networks, dataset=Path(out.index).parent, fields=out.fields,
                             metrics=out.metrics, neighbours=out.neighbours,
                             neighbours_figure=out.neighbours_figure),
        alignment=snakemake.params.alignment,
        seed=snakemake.params.seed,
        threads=snakemake.threads,
        device=snakemake.params.device,
    )
