"""Snakemake entry point of rule acquire_shard: unpack `snakemake`, call the library."""
from eolabels.acquisition.stages import acquire_shard
from eolabels.workflow import logged

with logged(snakemake.log[0]):
    acquire_shard(
        dataset=snakemake.wildcards.dataset,
        sheet=snakemake.input.sheet,
        shard=int(snakemake.wildcards.shard),
        n_shards=snakemake.params.n_shards,
        section=snakemake.params.settings,
        summary=snakemake.output.summary,
    )
