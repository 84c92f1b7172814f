"""Snakemake entry point of rule predict_hr: unpack `snakemake`, call the library."""
from eolabels.malloc import keep_freed_memory
from eolabels.openmp import use_short_spin

use_short_spin()  # before torch loads: the epitome's FFT paths without a gradient (eolabels.openmp)
keep_freed_memory()  # the per-batch log joints reuse freed pages (eolabels.malloc)

from eolabels.epitome.stages import predict_hr  # noqa: E402
from eolabels.workflow import logged  # noqa: E402

with logged(snakemake.log[0]):
    predict_hr(
        dataset=snakemake.wildcards.lsr_dataset,
        variant=snakemake.wildcards.lsr_variant,
        root=snakemake.input.index.rsplit("/", 1)[0],
        reading=snakemake.params.reading,
        table=snakemake.params.table,
        settings=snakemake.params.settings,
        seed=snakemake.params.seed,
        threads=snakemake.threads,
        out_index=snakemake.output.index,
        in_epitome=snakemake.input.get("epitome"),
        in_probs=snakemake.input.get("probs"),
    )
