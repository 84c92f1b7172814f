"""Snakemake entry point of rule audit_density: unpack `snakemake`, call the library."""
from pathlib import Path

from eolabels.similarity.stages import AuditOutputs, audit_stage
from eolabels.workflow import logged

with logged(snakemake.log[0]):
    out = snakemake.output
    audit_stage(
        model_path=snakemake.input.model,
        dataset_root=Path(snakemake.input.index).parent,
        heldout_root=Path(snakemake.input.heldout_index).parent,
        outputs=AuditOutputs(
            density=out.density, table=out.table, markdown=out.markdown, tiles=out.tiles, samples=out.samples,
            figure=out.figure, deciles=out.deciles,
        ),
        audit=snakemake.params.audit,
        seed=snakemake.params.seed,
        heldout_split=snakemake.params.heldout_split,
        threads=snakemake.threads,
        device=snakemake.params.device,
    )
