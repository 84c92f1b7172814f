"""Snakemake entry point of rule acquire_local: unpack `snakemake`, call the library."""
from pathlib import Path

from eolabels.data.local import import_local
from eolabels.workflow import logged

with logged(snakemake.log[0]):
    import_local(snakemake.wildcards.dataset, snakemake.params.settings, Path(snakemake.output.index).parent)
