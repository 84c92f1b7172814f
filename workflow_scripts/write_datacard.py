"""Snakemake entry point of rule write_datacard: unpack `snakemake`, call the library."""
from pathlib import Path

from eolabels.data.datacard import plot_preview, write_datacard
from eolabels.workflow import logged

with logged(snakemake.log[0]):
    root = Path(snakemake.input.index).parent
    write_datacard(root, snakemake.output.card)
    plot_preview(root, snakemake.output.preview, n_samples=snakemake.params.preview_samples)
