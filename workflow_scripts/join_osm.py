"""Snakemake entry point of rule join_osm: unpack `snakemake`, call the library."""
from pathlib import Path

from eolabels.data.stages import join_osm
from eolabels.workflow import logged

with logged(snakemake.log[0]):
    join_osm(
        dw_dir=Path(snakemake.input.dw_index).parent,
        osm_dir=Path(snakemake.input.osm_index).parent,
        out_dir=Path(snakemake.output.index).parent,
    )
