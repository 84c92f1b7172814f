"""Snakemake entry point of rule merge_shards: unpack `snakemake`, call the library."""
from pathlib import Path

from eolabels.acquisition.stages import merge_dataset
from eolabels.workflow import logged

with logged(snakemake.log[0]):
    merge_dataset(
        dataset=snakemake.wildcards.dataset,
        sheet=snakemake.input.sheet,
        summaries=snakemake.input.summaries,
        section=snakemake.params.settings,
        out_dir=Path(snakemake.output.index).parent,
    )
