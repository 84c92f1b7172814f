# CromSS pretraining (specs/cromss.md §1–5): every variant × S2 band set pretrains U-Net encoders on
# the noisy labels of config.cromss.dataset; figures per run and one table over all runs (what `all`
# builds of it: rules/common.smk).
from eolabels.cromss.wiring import (
    dw_test_inputs,
    final_checkpoint,
    final_checkpoint_name,
    pretrain_data,
    pretrain_runs,
    run_dir,
    run_name,
    training_settings,
    with_smoothing,
)
from eolabels.workflow import denoised_dataset

# the labels to pretrain on: the dataset or its self-denoised twin
PRETRAIN_DATA = pretrain_data(CROMSS)
# one run, <variant>_<bands>, as the rules' wildcards; its folder depends on the label source
PRETRAIN_RUN = run_name("{pretrain_variant}", "{s2_bands}")
PRETRAIN_RUN_DIR = run_dir(CROMSS, PRETRAIN_RUN)
# the rule params: training settings only, so resizing a job re-runs nothing
PRETRAIN_SETTINGS = canonical(training_settings(CROMSS))
# the DW dataset, whose test split every run scores per epoch (Fig. 8 a,b), unless dw_test_every is 0;
# ancient: an evaluation input whose rebuild must not retrain the encoders
PRETRAIN_DW_TEST = [ancient(path) for path in dw_test_inputs(CROMSS, DATASETS)]


rule pretrain_encoder:
    """Pretrain one variant's encoders on the noisy labels (a killed job resumes from last.ckpt)."""
    input:
        index=dataset_index(PRETRAIN_DATA),
        meta=dataset_meta(PRETRAIN_DATA),
        dw_test=PRETRAIN_DW_TEST,
    output:
        encoders=f"{PRETRAIN_RUN_DIR}/encoders.pt",
        checkpoint=final_checkpoint(CROMSS, PRETRAIN_RUN),
        metrics=f"{PRETRAIN_RUN_DIR}/metrics.csv",
        summary=f"{PRETRAIN_RUN_DIR}/summary.json",
    params:
        settings=PRETRAIN_SETTINGS,
        seed=config["seed"],
        device=config["device"],
    threads: CROMSS["threads"]
    resources:
        **job_resources(CROMSS, CROMSS["processes"]),
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
        metrics=f"{PRETRAIN_RUN_DIR}/metrics.csv",
        summary=f"{PRETRAIN_RUN_DIR}/summary.json",
    output:
        report(
            f"{PRETRAIN_RUN_DIR}/curves.png",
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
        checkpoint=final_checkpoint(CROMSS, PRETRAIN_RUN),
        index=dataset_index(PRETRAIN_DATA),
    output:
        report(
            f"{PRETRAIN_RUN_DIR}/selection_masks.png",
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
        [f"{run_dir(CROMSS, run)}/summary.json" for run in pretrain_runs(CROMSS, DATASETS)],
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


# Table VI's label-smoothing ablation (rules/finetune.smk reads their encoders): CromSS-midF runs
# pretrained with smoothing setting ls<beta>-<alpha> instead of cromss.label_smoothing.factors
use rule pretrain_encoder as pretrain_encoder_smoothing with:
    output:
        encoders="results/pretrain_smoothing/{ls_setting}/{pretrain_variant}_{s2_bands}/encoders.pt",
        checkpoint=f"results/pretrain_smoothing/{{ls_setting}}/{PRETRAIN_RUN}/{final_checkpoint_name(CROMSS)}",
        metrics="results/pretrain_smoothing/{ls_setting}/{pretrain_variant}_{s2_bands}/metrics.csv",
        summary="results/pretrain_smoothing/{ls_setting}/{pretrain_variant}_{s2_bands}/summary.json",
    params:
        settings=lambda w: canonical(with_smoothing(PRETRAIN_SETTINGS, w.ls_setting)),
        seed=config["seed"],
        device=config["device"],
    log:
        "logs/pretrain_encoder_smoothing/{ls_setting}/{pretrain_variant}_{s2_bands}.log",
    benchmark:
        "benchmarks/pretrain_encoder_smoothing/{ls_setting}/{pretrain_variant}_{s2_bands}.tsv"


if CROMSS["label_source"] == "dw":

    # the fine-tuning rows pretrained on the self-denoised labels (finetune.denoised), beside the main
    # runs on the dataset's own labels
    use rule pretrain_encoder as pretrain_encoder_denoised with:
        input:
            index=dataset_index(denoised_dataset(CROMSS["dataset"])),
            meta=dataset_meta(denoised_dataset(CROMSS["dataset"])),
            dw_test=PRETRAIN_DW_TEST,
        output:
            encoders="results/pretrain_dw_denoised/{pretrain_variant}_{s2_bands}/encoders.pt",
            checkpoint=f"results/pretrain_dw_denoised/{PRETRAIN_RUN}/{final_checkpoint_name(CROMSS)}",
            metrics="results/pretrain_dw_denoised/{pretrain_variant}_{s2_bands}/metrics.csv",
            summary="results/pretrain_dw_denoised/{pretrain_variant}_{s2_bands}/summary.json",
        priority: 20  # on the longest chain (denoised labels -> this run -> its fine-tuning rows)
        log:
            "logs/pretrain_encoder_denoised/{pretrain_variant}_{s2_bands}.log",
        benchmark:
            "benchmarks/pretrain_encoder_denoised/{pretrain_variant}_{s2_bands}.tsv"
