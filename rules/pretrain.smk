# CromSS pretraining (specs/cromss.md §1–5): every variant × S2 band set pretrains U-Net encoders on
# the noisy labels of config.cromss.dataset; figures per run and one table over all runs.
from eolabels.cromss.wiring import (
    fusion_runs,
    pretrain_data,
    pretrain_root,
    pretrain_runs,
    schema_choices,
    training_settings,
)

CROMSS = config["cromss"]
# the variant names and band sets live in the section's schema (its enums), the one place they are listed
PRETRAIN_VARIANTS, S2_BAND_SETS = schema_choices(Path(workflow.basedir) / "config" / "schemas" / "cromss.yaml")
# the labels to pretrain on (the dataset or its self-denoised twin) and the runs' folder per label source
PRETRAIN_DATA = pretrain_data(CROMSS)
PRETRAIN_ROOT = pretrain_root(CROMSS)


wildcard_constraints:
    pretrain_variant="|".join(PRETRAIN_VARIANTS),
    s2_bands="|".join(S2_BAND_SETS),


# runs as "<variant>_<bands>" (s1 once: it ignores the S2 bands)
PRETRAIN_RUNS = pretrain_runs(CROMSS, DATASETS)
FUSION_RUNS = fusion_runs(PRETRAIN_RUNS)
# the rule params: training settings only, so resizing a job re-runs nothing
PRETRAIN_SETTINGS = training_settings(CROMSS)
# the final epoch's full checkpoint (authors' naming); last.ckpt stays undeclared so that a killed
# job resumes from it instead of Snakemake deleting it as an incomplete output
FINAL_CHECKPOINT = f"{PRETRAIN_ROOT}/{{pretrain_variant}}_{{s2_bands}}/epoch={CROMSS['epochs'] - 1:03d}.ckpt"


rule pretrain_encoder:
    """Pretrain one variant's encoders on the noisy labels (a killed job resumes from last.ckpt)."""
    input:
        index=dataset_index(PRETRAIN_DATA),
        meta=f"results/data/{PRETRAIN_DATA}/dataset.json",
    output:
        encoders=f"{PRETRAIN_ROOT}/{{pretrain_variant}}_{{s2_bands}}/encoders.pt",
        checkpoint=FINAL_CHECKPOINT,
        metrics=f"{PRETRAIN_ROOT}/{{pretrain_variant}}_{{s2_bands}}/metrics.csv",
        summary=f"{PRETRAIN_ROOT}/{{pretrain_variant}}_{{s2_bands}}/summary.json",
    params:
        settings=PRETRAIN_SETTINGS,
        seed=config["seed"],
        device=config["device"],
    threads: CROMSS["threads"]
    resources:
        mem_mb=CROMSS["mem_mb"],
        runtime=CROMSS["runtime"],
    log:
        "logs/pretrain_encoder/{pretrain_variant}_{s2_bands}.log",
    benchmark:
        "benchmarks/pretrain_encoder/{pretrain_variant}_{s2_bands}.tsv"
    conda:
        "../envs/eolabels.yaml"
    script:
        "../workflow_scripts/pretrain_encoder.py"


rule plot_pretrain_curves:
    """Losses, validation scores, learning rate and selection ratio per epoch (paper Fig. 8 a,b)."""
    input:
        metrics=f"{PRETRAIN_ROOT}/{{pretrain_variant}}_{{s2_bands}}/metrics.csv",
        summary=f"{PRETRAIN_ROOT}/{{pretrain_variant}}_{{s2_bands}}/summary.json",
    output:
        report(
            f"{PRETRAIN_ROOT}/{{pretrain_variant}}_{{s2_bands}}/curves.png",
            caption="captions/pretrain_curves.rst",
            category="Pretraining",
            subcategory="curves",
        ),
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    log:
        "logs/plot_pretrain_curves/{pretrain_variant}_{s2_bands}.log",
    benchmark:
        "benchmarks/plot_pretrain_curves/{pretrain_variant}_{s2_bands}.tsv"
    conda:
        "../envs/eolabels.yaml"
    script:
        "../workflow_scripts/plot_pretrain_curves.py"


rule plot_selection_masks:
    """Confidences, cross-modal enhancement and final weights of a fusion run (paper Fig. 11)."""
    input:
        checkpoint=FINAL_CHECKPOINT,
        index=dataset_index(PRETRAIN_DATA),
    output:
        report(
            f"{PRETRAIN_ROOT}/{{pretrain_variant}}_{{s2_bands}}/selection_masks.png",
            caption="captions/pretrain_selection.rst",
            category="Pretraining",
            subcategory="selection masks",
        ),
    params:
        settings=PRETRAIN_SETTINGS,
        seed=config["seed"],
        locations=CROMSS["figure_locations"],
    threads: 1
    resources:
        mem_mb=2000,
        runtime=5,
    log:
        "logs/plot_selection_masks/{pretrain_variant}_{s2_bands}.log",
    benchmark:
        "benchmarks/plot_selection_masks/{pretrain_variant}_{s2_bands}.tsv"
    conda:
        "../envs/eolabels.yaml"
    script:
        "../workflow_scripts/plot_selection_masks.py"


rule tabulate_pretraining:
    """One row per run: last-epoch scores of each branch against the noisy labels and the truth."""
    input:
        expand(f"{PRETRAIN_ROOT}/{{run}}/summary.json", run=PRETRAIN_RUNS),
    output:
        table="results/tables/pretraining.csv",
        markdown=report(
            "results/tables/pretraining.md",
            caption="captions/pretraining_table.rst",
            category="Pretraining",
            subcategory="table",
        ),
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    log:
        "logs/tabulate_pretraining/pretraining.log",
    benchmark:
        "benchmarks/tabulate_pretraining/pretraining.tsv"
    conda:
        "../envs/eolabels.yaml"
    script:
        "../workflow_scripts/tabulate_pretraining.py"


if PRETRAIN_RUNS:
    TARGETS["cromss"] = (
        expand(f"{PRETRAIN_ROOT}/{{run}}/encoders.pt", run=PRETRAIN_RUNS)
        + expand(f"{PRETRAIN_ROOT}/{{run}}/curves.png", run=PRETRAIN_RUNS)
        + expand(f"{PRETRAIN_ROOT}/{{run}}/selection_masks.png", run=FUSION_RUNS)
        + ["results/tables/pretraining.csv"]
    )
    REPORT_TABLES += ["results/tables/pretraining.csv"]
