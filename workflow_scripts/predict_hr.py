"""Snakemake entry point of rule predict_hr: unpack `snakemake`, call the library."""
from eolabels.openmp import use_short_spin

use_short_spin()  # before torch loads: the epitome's FFT paths without a gradient (eolabels.openmp)

from eolabels.epitome.stages import predict_hr  # noqa: E402
from eolabels.workflow import logged  # noqa: E402

with logged(snakemake.log[0]):
    predict_hr(
        snakemake.wildcards.lsr_dataset, snakemake.wildcards.lsr_variant, snakemake.input.index.rsplit("/", 1)[0],
        snakemake.params.reading, snakemake.params.table, snakemake.params.settings, snakemake.params.seed,
        snakemake.threads, snakemake.output.index,
        in_epitome=snakemake.input.get("epitome"), in_probs=snakemake.input.get("probs"),
    )
