"""Snakemake entry point of rule embed_labels: unpack `snakemake`, call the library."""
from eolabels.malloc import keep_freed_memory
from eolabels.openmp import use_short_spin

use_short_spin()  # before torch loads: the epitome's FFT paths without a gradient (eolabels.openmp)
keep_freed_memory()  # the per-batch log joints reuse freed pages (eolabels.malloc)

from eolabels.epitome.stages import embed_labels  # noqa: E402
from eolabels.workflow import logged  # noqa: E402

with logged(snakemake.log[0]):
    embed_labels(
        dataset=snakemake.wildcards.lsr_dataset,
        root=snakemake.input.index.rsplit("/", 1)[0],
        reading=snakemake.params.reading,
        table=snakemake.params.table,
        settings=snakemake.params.settings,
        seed=snakemake.params.seed,
        threads=snakemake.threads,
        in_epitome=snakemake.input.epitome,
        out_lrmap=snakemake.output.lrmap,
    )
