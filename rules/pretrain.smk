# CromSS pretraining (specs/cromss.md §1–5): every variant × S2 band set pretrains U-Net encoders on
# the noisy labels of config.cromss.dataset; figures per run and one table over all runs.
import yaml

CROMSS = config["cromss"]
# the variant names live in the section's schema (its enum), the one place they are listed
with open(Path(workflow.basedir) / "config" / "schemas" / "cromss.yaml") as _schema:
    _cromss_properties = yaml.safe_load(_schema)["properties"]
PRETRAIN_VARIANTS = _cromss_properties["variants"]["items"]["enum"]
S2_BAND_SETS = _cromss_properties["bands"]["items"]["enum"]
# settings that only place or size a job; every other key is a training setting (a rule param)
_CROMSS_JOB_KEYS = {
    "dataset", "label_source", "variants", "bands", "threads", "mem_mb", "runtime", "figure_locations",
}
# the labels to pretrain on: the dataset itself, or its self-denoised twin (rules/similarity.smk)
PRETRAIN_DATA = CROMSS["dataset"] + ("_denoised" if CROMSS["label_source"] == "dw_denoised" else "")
# runs on the two label sources never share a directory (nor a last.ckpt to resume from)
PRETRAIN_ROOT = "results/pretrain" if CROMSS["label_source"] == "dw" else "results/pretrain_dw_denoised"


wildcard_constraints:
    pretrain_variant="|".join(PRETRAIN_VARIANTS),
    s2_bands="|".join(S2_BAND_SETS),


# runs as "<variant>_<bands>"; s1 ignores the S2 bands, so it runs once (with the first band set)
PRETRAIN_RUNS = [
    f"{variant}_{bands}"
    for variant in CROMSS["variants"]
    for bands in (CROMSS["bands"][:1] if variant == "s1" else CROMSS["bands"])
    if CROMSS["dataset"] in DATASETS
]
FUSION_RUNS = [run for run in PRETRAIN_RUNS if not run.startswith(("s1_", "s2_"))]
# training settings of every run, sorted so that reordering the YAML re-runs nothing
PRETRAIN_SETTINGS = {k: v for k, v in sorted(CROMSS.items()) if k not in _CROMSS_JOB_KEYS}
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
