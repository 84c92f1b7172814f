# eolabels: learning land-cover maps from imperfect labels — one DAG from acquisition to tables.
# Run: snakemake --cores all            (config/config.yaml, the embedded synthetic world)
#      snakemake --cores all --configfile config/test.yaml   (tiny end-to-end scenario)


configfile: "config/config.yaml"


# rules/common.smk comes first: it validates the config and defines all the stage files share (they
# read no global of one another, so their order is free), what `all` builds and what the report shows
include: "rules/common.smk"
include: "rules/acquire.smk"
include: "rules/similarity.smk"
include: "rules/epitome.smk"
include: "rules/pretrain.smk"
include: "rules/finetune.smk"
include: "rules/report.smk"


rule all:
    input:
        all_targets(),
        "results/report/summary.md",
    default_target: True
