"""Snakemake entry point of rule predict_hr: unpack `snakemake`, call the library."""
from eolabels.epitome.stages import predict_hr
from eolabels.workflow import logged

with logged(snakemake.log[0]):
    predict_hr(
        snakemake.wildcards.lsr_dataset, snakemake.wildcards.lsr_variant, snakemake.input.index.rsplit("/", 1)[0],
        snakemake.params.reading, snakemake.params.table, snakemake.params.settings, snakemake.params.seed,
        snakemake.threads, snakemake.output.index,
        in_epitome=snakemake.input.get("epitome"), in_probs=snakemake.input.get("probs"),
    )
