"""Snakemake entry point of rule pretrain_encoder: unpack `snakemake`, call the library."""
from pathlib import Path

from eolabels.cromss.stage import run_pretraining
from eolabels.workflow import logged

with logged(snakemake.log[0]):
    run_pretraining(
        Path(snakemake.input.index).parent,
        Path(snakemake.output.encoders).parent,
        snakemake.wildcards.pretrain_variant,
        snakemake.wildcards.s2_bands,
        snakemake.params.settings,
        seed=snakemake.params.seed,
        device=snakemake.params.device,
        threads=snakemake.threads,
    )
