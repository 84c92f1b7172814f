"""Snakemake entry point of rule train_epitome: unpack `snakemake`, call the library."""
from eolabels.epitome.stages import EpitomeOutputs, train_epitome
from eolabels.workflow import logged

with logged(snakemake.log[0]):
    out = snakemake.output
    train_epitome(
        dataset=snakemake.wildcards.lsr_dataset,
        root=snakemake.input.index.rsplit("/", 1)[0],
        reading=snakemake.params.reading,
        settings=snakemake.params.settings,
        seed=snakemake.params.seed,
        device=snakemake.params.device,
        threads=snakemake.threads,
        outputs=EpitomeOutputs(
            epitome=out.epitome, history=out.history, means=out.means, usage=out.usage,
            promotion=out.promotion, loss=out.loss,
        ),
    )
