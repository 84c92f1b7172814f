"""Snakemake entry point of rule dfc2020_distill: unpack `snakemake`, call the library."""
from eolabels.epitome.stages import DistillOutputs, dfc2020_distill
from eolabels.workflow import logged

with logged(snakemake.log[0]):
    out = snakemake.output
    dfc2020_distill(
        root=snakemake.input.index.rsplit("/", 1)[0],
        reading=snakemake.params.reading,
        settings=snakemake.params.settings,
        seed=snakemake.params.seed,
        device=snakemake.params.device,
        threads=snakemake.threads,
        in_ensemble=snakemake.input.ensemble,
        outputs=DistillOutputs(index=out.index, model=out.model, loss=out.loss),
    )
