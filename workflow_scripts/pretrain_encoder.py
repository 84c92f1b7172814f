"""Snakemake entry point of rule pretrain_encoder: unpack `snakemake`, call the library."""
from pathlib import Path

from eolabels.cromss.stages import PretrainOutputs, pretrain_encoder
from eolabels.workflow import logged

with logged(snakemake.log[0]):
    pretrain_encoder(
        dataset_dir=Path(snakemake.input.index).parent,
        outputs=PretrainOutputs(
            encoders=Path(snakemake.output.encoders),
            checkpoint=Path(snakemake.output.checkpoint),
            metrics=Path(snakemake.output.metrics),
            summary=Path(snakemake.output.summary),
        ),
        variant=snakemake.wildcards.pretrain_variant,
        bands=snakemake.wildcards.s2_bands,
        settings=snakemake.params.settings,
        seed=snakemake.params.seed,
        device=snakemake.params.device,
        threads=snakemake.threads,
        test_dir=Path(snakemake.input.dw_test[0]).parent if snakemake.input.dw_test else None,
    )
