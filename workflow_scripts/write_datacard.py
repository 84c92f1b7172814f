"""Snakemake entry point of rule write_datacard: unpack `snakemake`, call the library."""
from pathlib import Path

from eolabels.data.stages import describe_dataset
from eolabels.workflow import logged

with logged(snakemake.log[0]):
    describe_dataset(
        dataset_dir=Path(snakemake.input.index).parent,
        card=snakemake.output.card,
        preview=snakemake.output.preview,
        preview_samples=snakemake.params.preview_samples,
        scheduler=snakemake.config["dask"]["scheduler"],  # not a param: where it runs changes no number
        workers=snakemake.threads,
    )
