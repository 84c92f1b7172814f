"""Snakemake entry point of rule acquire_synthetic: unpack `snakemake`, call the library."""
from pathlib import Path

from eolabels.data.stages import acquire_synthetic
from eolabels.workflow import logged

with logged(snakemake.log[0]):
    acquire_synthetic(
        dataset=snakemake.wildcards.dataset,
        out_dir=Path(snakemake.output.index).parent,
        generator=snakemake.params.generator,
        seed=snakemake.params.seed,
    )
