"""Snakemake entry point of rule acquire_synthetic: unpack `snakemake`, call the library."""
from pathlib import Path

from eolabels.data.synthetic import generate_dataset
from eolabels.workflow import logged

with logged(snakemake.log[0]):
    generate_dataset(
        snakemake.wildcards.dataset,
        Path(snakemake.output.index).parent,
        snakemake.params.generator,
        seed=snakemake.params.seed,
    )
