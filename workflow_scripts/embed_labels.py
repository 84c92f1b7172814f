"""Snakemake entry point of rule embed_labels: unpack `snakemake`, call the library."""
from eolabels.openmp import use_short_spin

use_short_spin()  # before torch loads: the epitome's FFT paths without a gradient (eolabels.openmp)

from eolabels.epitome.stages import embed_labels  # noqa: E402
from eolabels.workflow import logged  # noqa: E402

with logged(snakemake.log[0]):
    embed_labels(
        snakemake.wildcards.lsr_dataset, snakemake.input.index.rsplit("/", 1)[0], snakemake.params.reading,
        snakemake.params.table, snakemake.params.settings, snakemake.params.seed, snakemake.threads,
        snakemake.input.epitome, snakemake.output.lrmap,
    )
