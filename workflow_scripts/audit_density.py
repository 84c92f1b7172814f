"""Snakemake entry point of rule audit_density: unpack `snakemake`, call the library."""
from pathlib import Path

from eolabels.similarity.audit import audit_paths
from eolabels.similarity.stages import audit_stage
from eolabels.workflow import logged

with logged(snakemake.log[0]):
    audit_stage(
        snakemake.input.model,
        Path(snakemake.input.index).parent,
        Path(snakemake.input.heldout_index).parent,
        snakemake.output.density,
        *audit_paths(snakemake.output),
        snakemake.params.audit,
        heldout_split=snakemake.params.heldout_split,
        threads=snakemake.threads,
        device=snakemake.params.device,
        seed=snakemake.params.seed,
    )
