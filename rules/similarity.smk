# Network input similarity (specs/netsimilarity.md §1-3, §5.a, §5.b): a small U-Net trained on the noisy
# labels of config.similarity.dataset, its density audit, self-denoising rounds whose last labels become
# the dataset `<dataset>_denoised`, and the paper's toy; what `all` builds of it: rules/common.smk.
from eolabels.similarity.wiring import audit_inputs, audit_settings, training_inputs
from eolabels.workflow import denoised_dataset

# index and description of the training and held-out datasets
SIM_INPUTS = training_inputs(SIMILARITY)
SIM_DENOISED = denoised_dataset(SIMILARITY["dataset"])


rule train_segmenter:
    """Train the small U-Net on the noisy labels; score it on the held-out truth."""
    input:
        **SIM_INPUTS,
    output:
        model="results/similarity/unet/model.pt",
        metrics="results/similarity/unet/metrics.json",
    params:
        train=canonical(SIMILARITY["train"]),
        seed=config["seed"],
        heldout_split=SIMILARITY["heldout_split"],
        device=config["device"],
        withheld_season=SIMILARITY["audit"]["withheld_season"],
    threads: SIMILARITY["threads"]
    resources:
        **job_resources(SIMILARITY),
    log:
        "logs/train_segmenter/unet.log",
    benchmark:
        "benchmarks/train_segmenter/unet.tsv"
    conda:
        "../envs/eolabels.yaml"
    script:
        "../workflow_scripts/train_segmenter.py"


rule audit_density:
    """Density audit (spec §5.a): density maps, per-tile and per-sample tables, flags, A2/A3."""
    input:
        **SIM_INPUTS,
        model="results/similarity/unet/model.pt",
    output:
        density=directory("results/similarity/audit/density"),
        tiles="results/similarity/audit/tiles.csv",
        samples="results/similarity/audit/samples.csv",
        table="results/tables/density_audit.csv",
        markdown=report(
            "results/tables/density_audit.md",
            caption="captions/density_audit_table.rst",
            category="Network similarity",
            subcategory="density audit",
        ),
        figure=report(
            "results/similarity/audit/tiles.png",
            caption="captions/density_audit_tiles.rst",
            category="Network similarity",
            subcategory="density audit",
        ),
        deciles=report(
            "results/similarity/audit/deciles.png",
            caption="captions/density_audit_deciles.rst",
            category="Network similarity",
            subcategory="density audit",
        ),
    params:
        audit=canonical(SIMILARITY["audit"]),
        seed=config["seed"],
        heldout_split=SIMILARITY["heldout_split"],
        device=config["device"],
    threads: SIMILARITY["threads"]
    resources:
        **job_resources(SIMILARITY),
    log:
        "logs/audit_density/unet.log",
    benchmark:
        "benchmarks/audit_density/unet.tsv"
    conda:
        "../envs/eolabels.yaml"
    script:
        "../workflow_scripts/audit_density.py"


rule denoise_labels:
    """Self-denoising rounds (spec §5.b); the last round's labels become results/data/<dataset>_denoised."""
    input:
        **SIM_INPUTS,
    output:
        rounds=directory("results/similarity/denoise/rounds"),
        details="results/similarity/denoise/rounds.csv",
        table="results/tables/self_denoising.csv",
        markdown=report(
            "results/tables/self_denoising.md",
            caption="captions/denoise_table.rst",
            category="Network similarity",
            subcategory="self-denoising",
        ),
        figure=report(
            "results/similarity/denoise/rounds.png",
            caption="captions/denoise_rounds.rst",
            category="Network similarity",
            subcategory="self-denoising",
        ),
        index=dataset_index(SIM_DENOISED),
        meta=dataset_meta(SIM_DENOISED),
    params:
        train=canonical(SIMILARITY["train"]),
        denoise=canonical(SIMILARITY["denoise"]),
        seed=config["seed"],
        heldout_split=SIMILARITY["heldout_split"],
        device=config["device"],
    threads: SIMILARITY["threads"]
    priority: 20  # first of the longest chain: denoised labels, their pretraining, its rows
    resources:
        **job_resources(SIMILARITY),
    log:
        "logs/denoise_labels/rounds.log",
    benchmark:
        "benchmarks/denoise_labels/rounds.tsv"
    conda:
        "../envs/eolabels.yaml"
    script:
        "../workflow_scripts/denoise_labels.py"


rule fit_toys:
    """The paper's toy (spec §2.4): neighbour density vs frequency and curvature of sinusoids."""
    output:
        table="results/tables/similarity_toy.csv",
        markdown=report(
            "results/tables/similarity_toy.md",
            caption="captions/similarity_toy_table.rst",
            category="Network similarity",
            subcategory="toy",
        ),
        soft=report(
            "results/similarity/toy/density_soft.png",
            caption="captions/similarity_toy_plot.rst",
            category="Network similarity",
            subcategory="toy",
        ),
        hard=report(
            "results/similarity/toy/density_hard_t0.9.png",
            caption="captions/similarity_toy_plot.rst",
            category="Network similarity",
            subcategory="toy",
        ),
    params:
        toy=canonical(SIMILARITY["toy"]),
        seed=config["seed"],
    threads: SIMILARITY["threads"]
    resources:
        mem_mb=SIMILARITY["mem_mb"],
        runtime=SIMILARITY["runtime"],
    log:
        "logs/fit_toys/toy.log",
    benchmark:
        "benchmarks/fit_toys/toy.tsv"
    conda:
        "../envs/eolabels.yaml"
    script:
        "../workflow_scripts/fit_toys.py"


# Density audit of CromSS pretraining runs (spec §5.a): one modality branch of a run's final checkpoint,
# on the labels it was pretrained on. The checkpoint path and the audited runs come from the cromss wiring
# functions that rules/pretrain.smk uses too.


rule audit_pretrained:
    """Density audit (spec §5.a) of one branch of a CromSS pretraining run: maps, tables, flags, A2/A3."""
    input:
        # the final checkpoint of run <variant>_<bands> (rule pretrain_encoder's output)
        **audit_inputs(SIMILARITY, CROMSS, "{variant}"),
    output:
        density=directory("results/similarity/audit_pretrain/{variant}/density"),
        tiles="results/similarity/audit_pretrain/{variant}/tiles.csv",
        samples="results/similarity/audit_pretrain/{variant}/samples.csv",
        table="results/tables/density_audit_pretrain_{variant}.csv",
        markdown=report(
            "results/tables/density_audit_pretrain_{variant}.md",
            caption="captions/density_audit_pretrain_table.rst",
            category="Network similarity",
            subcategory="density audit of pretrained networks",
        ),
        figure=report(
            "results/similarity/audit_pretrain/{variant}/tiles.png",
            caption="captions/density_audit_pretrain_tiles.rst",
            category="Network similarity",
            subcategory="density audit of pretrained networks",
        ),
        deciles=report(
            "results/similarity/audit_pretrain/{variant}/deciles.png",
            caption="captions/density_audit_pretrain_deciles.rst",
            category="Network similarity",
            subcategory="density audit of pretrained networks",
        ),
    params:
        # the list of audited variants picks jobs only; it is no setting of one audit
        audit=canonical(audit_settings(SIMILARITY)),
        modality=SIMILARITY["audit_pretrained"]["modality"],
        seed=config["seed"],
        heldout_split=SIMILARITY["heldout_split"],
        device=config["device"],
    threads: SIMILARITY["threads"]
    resources:
        **job_resources(SIMILARITY),
    log:
        "logs/audit_pretrained/{variant}.log",
    benchmark:
        "benchmarks/audit_pretrained/{variant}.tsv"
    conda:
        "../envs/eolabels.yaml"
    script:
        "../workflow_scripts/audit_pretrained.py"
