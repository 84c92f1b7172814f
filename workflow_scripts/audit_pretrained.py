"""Snakemake entry point of rule audit_pretrained: unpack `snakemake`, call the library."""
from pathlib import Path

from eolabels.similarity.pretrained import audit_pretrained_stage
from eolabels.similarity.audit import audit_paths
from eolabels.workflow import logged

with logged(snakemake.log[0]):
    audit_pretrained_stage(
        snakemake.input.checkpoint,
        Path(snakemake.input.index).parent,
        Path(snakemake.input.heldout_index).parent,
        snakemake.output.density,
        *audit_paths(snakemake.output),
        snakemake.wildcards.variant,
        snakemake.params.audit,
        modality=snakemake.params.modality,
        seed=snakemake.params.seed,
        heldout_split=snakemake.params.heldout_split,
        threads=snakemake.threads,
        device=snakemake.params.device,
    )
