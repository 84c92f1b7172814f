"""Snakemake entry point of rule merge_shards: unpack `snakemake`, call the library."""
from pathlib import Path

from eolabels.acquisition.stages import merge_dataset
from eolabels.workflow import logged

with logged(snakemake.log[0]):
    merge_dataset(
        dataset=snakemake.params.fetched,
        sheet=snakemake.input.sheet,
        summaries=snakemake.input.summaries,
        out_dir=Path(snakemake.output.index).parent,
    )
