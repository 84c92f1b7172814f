"""Snakemake entry point of rule assemble_noldo: unpack `snakemake`, call the library."""
from pathlib import Path

from eolabels.data.stages import assemble_noldo
from eolabels.workflow import logged

with logged(snakemake.log[0]):
    assemble_noldo(raw_dir=Path(snakemake.input.index).parent, out_dir=Path(snakemake.output.index).parent)
