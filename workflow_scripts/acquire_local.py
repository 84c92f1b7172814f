"""Snakemake entry point of rule acquire_local: unpack `snakemake`, call the library."""
from pathlib import Path

from eolabels.data.stages import acquire_local
from eolabels.workflow import logged

with logged(snakemake.log[0]):
    acquire_local(
        dataset=snakemake.wildcards.dataset,
        settings=snakemake.params.settings,
        out_dir=Path(snakemake.output.index).parent,
    )
