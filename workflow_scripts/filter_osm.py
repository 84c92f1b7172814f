"""Snakemake entry point of rule filter_osm: unpack `snakemake`, call the library."""
from pathlib import Path

from eolabels.data.stages import filter_osm
from eolabels.data.wiring import compared_maps
from eolabels.workflow import logged

with logged(snakemake.log[0]):
    filter_osm(
        dw_dir=Path(snakemake.input.dw_index).parent,
        osm_dir=Path(snakemake.input.osm_index).parent,
        role=snakemake.params.role,
        out_dir=Path(snakemake.output.index).parent,
        agreement=snakemake.output.agreement,
        table=snakemake.output.table,
        table_md=snakemake.output.table_md,
        histogram=snakemake.output.histogram,
        settings=snakemake.params.settings,
        maps=snakemake.params.maps,
        compare={compared_maps(snakemake.params.maps): Path(snakemake.input.compare_index).parent}
        if "compare_index" in snakemake.input.keys() else None,
        seed=snakemake.params.seed,
        scheduler=snakemake.config["dask"]["scheduler"],  # not a param: where it runs changes no number
        workers=snakemake.threads,
    )
