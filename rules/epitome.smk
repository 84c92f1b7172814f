# Epitomic label super-resolution (specs/epitome.md): an epitome trained over all tiles of a dataset,
# coarse labels embedded into it and super-resolved by EM, high-res maps reconstructed; beside it the
# naive, colour-mixture and self-epitomic variants, and the DFC2020 ensemble and distilled FCN.
# Each rule's params are the config values it uses, so changing one re-runs only what depends on it.
# What `all` builds of the stage and the datasets it runs on: rules/common.smk.

from eolabels.epitome.wiring import reading_settings, variant_inputs, variant_settings

# the rows of the DFC2020 table and the folders of their predictions
DFC2020_ROWS = {"colour": "colour", "epitome": "epitome", "ensemble": "ensemble", "distilled FCN": "distilled"}


rule train_epitome:
    """One epitome over all tiles of a dataset (spec §3), resumable, with its training figures."""
    input:
        index=dataset_index("{lsr_dataset}"),
        meta=dataset_meta("{lsr_dataset}"),
    output:
        epitome="results/epitome/{lsr_dataset}/epitome.pt",
        history="results/epitome/{lsr_dataset}/training.csv",
        means=report(
            "results/epitome/{lsr_dataset}/means.png",
            caption="captions/epitome_means.rst",
            category="Epitomes",
            subcategory="{lsr_dataset}",
        ),
        usage=report(
            "results/epitome/{lsr_dataset}/usage.png",
            caption="captions/epitome_usage.rst",
            category="Epitomes",
            subcategory="{lsr_dataset}",
        ),
        promotion=report(
            "results/epitome/{lsr_dataset}/promotion.png",
            caption="captions/epitome_promotion.rst",
            category="Epitomes",
            subcategory="{lsr_dataset}",
        ),
        loss=report(
            "results/epitome/{lsr_dataset}/loss.png",
            caption="captions/epitome_loss.rst",
            category="Epitomes",
            subcategory="{lsr_dataset}",
        ),
    params:
        reading=lambda w: reading_settings(EPITOME[w.lsr_dataset]),
        settings=lambda w: canonical(EPITOME[w.lsr_dataset]["epitome"]),
        seed=config["seed"],
        device=config["device"],
    threads: EPITOME["threads"]
    resources:
        **job_resources(EPITOME),
    log:
        "logs/train_epitome/{lsr_dataset}.log",
    benchmark:
        "benchmarks/train_epitome/{lsr_dataset}.tsv"
    conda:
        "../envs/eolabels.yaml"
    script:
        "../workflow_scripts/train_epitome.py"


rule embed_labels:
    """Coarse labels of sampled patches embedded into the epitome (spec §5): lrmap[c, s]."""
    input:
        index=dataset_index("{lsr_dataset}"),
        meta=dataset_meta("{lsr_dataset}"),
        epitome="results/epitome/{lsr_dataset}/epitome.pt",
    output:
        lrmap="results/epitome/{lsr_dataset}/lrmap.pt",
    params:
        reading=lambda w: reading_settings(EPITOME[w.lsr_dataset]),
        table=lambda w: canonical(EPITOME[w.lsr_dataset]["table"]),
        settings=lambda w: canonical(EPITOME[w.lsr_dataset]["embed"]),
        seed=config["seed"],
    threads: EPITOME["threads"]
    resources:
        mem_mb=EPITOME["mem_mb"],
        runtime=EPITOME["runtime"],
    log:
        "logs/embed_labels/{lsr_dataset}.log",
    benchmark:
        "benchmarks/embed_labels/{lsr_dataset}.tsv"
    conda:
        "../envs/eolabels.yaml"
    script:
        "../workflow_scripts/embed_labels.py"


rule lsr:
    """p(l|s) on the epitome positions by the EM of supplement eqs. 4-5 (spec §6)."""
    input:
        lrmap="results/epitome/{lsr_dataset}/lrmap.pt",
        tables=TABLE_FILES,
    output:
        probs="results/epitome/{lsr_dataset}/label_probs.pt",
    params:
        em=lambda w: canonical(EPITOME[w.lsr_dataset]["em"]),
        seed=config["seed"],
    threads: EPITOME["threads"]
    resources:
        mem_mb=EPITOME["mem_mb"],
        runtime=EPITOME["runtime"],
    log:
        "logs/lsr/{lsr_dataset}.log",
    benchmark:
        "benchmarks/lsr/{lsr_dataset}.tsv"
    conda:
        "../envs/eolabels.yaml"
    script:
        "../workflow_scripts/lsr.py"


rule predict_hr:
    """High-res maps of every tile by one LSR variant, as GeoTIFFs on the input grids (+ index)."""
    input:
        unpack(lambda w: variant_inputs(w.lsr_dataset, w.lsr_variant)),
    output:
        index="results/lsr/{lsr_dataset}/{lsr_variant}/index.csv",
        meta="results/lsr/{lsr_dataset}/{lsr_variant}/dataset.json",
    params:
        reading=lambda w: reading_settings(EPITOME[w.lsr_dataset]),
        table=lambda w: canonical(EPITOME[w.lsr_dataset]["table"]),
        settings=lambda w: variant_settings(EPITOME[w.lsr_dataset], w.lsr_variant),
        seed=config["seed"],
    threads: EPITOME["threads"]
    resources:
        mem_mb=EPITOME["mem_mb"],
        runtime=EPITOME["runtime"],
    log:
        "logs/predict_hr/{lsr_dataset}_{lsr_variant}.log",
    benchmark:
        "benchmarks/predict_hr/{lsr_dataset}_{lsr_variant}.tsv"
    conda:
        "../envs/eolabels.yaml"
    script:
        "../workflow_scripts/predict_hr.py"


rule evaluate_lsr:
    """Every LSR variant against the truth, per tile and pooled; the side-by-side figure."""
    input:
        index=dataset_index("lsr"),
        meta=dataset_meta("lsr"),
        predictions=expand("results/lsr/lsr/{variant}/index.csv", variant=EPITOME["lsr"]["variants"]),
        tables=TABLE_FILES,
    output:
        table=report(
            f"results/tables/{LSR_TABLE}.csv", caption="captions/lsr_table.rst", category="Label super-resolution"
        ),
        markdown=f"results/tables/{LSR_TABLE}.md",
        figure=report(
            "results/lsr/lsr/comparison.png", caption="captions/lsr_comparison.rst", category="Label super-resolution"
        ),
    params:
        reading=reading_settings(EPITOME["lsr"]),
        table=canonical(EPITOME["lsr"]["table"]),
        variants=EPITOME["lsr"]["variants"],
        preview_tiles=EPITOME["preview_tiles"],
    threads: 1
    resources:
        mem_mb=EPITOME["mem_mb"],
        runtime=EPITOME["runtime"],
    log:
        "logs/evaluate_lsr/lsr.log",
    benchmark:
        "benchmarks/evaluate_lsr/lsr.tsv"
    conda:
        "../envs/eolabels.yaml"
    script:
        "../workflow_scripts/evaluate_lsr.py"


rule dfc2020_ensemble:
    """Colour model's label for the easily confused classes, the epitome's elsewhere (spec §9)."""
    input:
        index=dataset_index("dfc2020"),
        meta=dataset_meta("dfc2020"),
        colour="results/lsr/dfc2020/colour/index.csv",
        epitome="results/lsr/dfc2020/epitome/index.csv",
    output:
        index="results/lsr/dfc2020/ensemble/index.csv",
        meta="results/lsr/dfc2020/ensemble/dataset.json",
    params:
        reading=reading_settings(EPITOME["dfc2020"]),
        colour_classes=EPITOME["dfc2020"]["ensemble_colour_classes"],
    threads: 1
    resources:
        mem_mb=EPITOME["mem_mb"],
        runtime=EPITOME["runtime"],
    log:
        "logs/dfc2020_ensemble/dfc2020.log",
    benchmark:
        "benchmarks/dfc2020_ensemble/dfc2020.tsv"
    conda:
        "../envs/eolabels.yaml"
    script:
        "../workflow_scripts/dfc2020_ensemble.py"


rule dfc2020_distill:
    """The 5-layer FCN trained on the ensemble's labels and applied to the same images (spec §9)."""
    input:
        index=dataset_index("dfc2020"),
        meta=dataset_meta("dfc2020"),
        ensemble="results/lsr/dfc2020/ensemble/index.csv",
    output:
        index="results/lsr/dfc2020/distilled/index.csv",
        meta="results/lsr/dfc2020/distilled/dataset.json",
        model="results/epitome/dfc2020/distilled_fcn.pt",
        loss=report(
            "results/epitome/dfc2020/distilled_loss.png",
            caption="captions/dfc2020_distill_loss.rst",
            category="DFC2020",
        ),
    params:
        reading=reading_settings(EPITOME["dfc2020"]),
        settings=canonical(EPITOME["dfc2020"]["distill"]),
        seed=config["seed"],
        device=config["device"],
    threads: EPITOME["threads"]
    resources:
        **job_resources(EPITOME),
    log:
        "logs/dfc2020_distill/dfc2020.log",
    benchmark:
        "benchmarks/dfc2020_distill/dfc2020.tsv"
    conda:
        "../envs/eolabels.yaml"
    script:
        "../workflow_scripts/dfc2020_distill.py"


rule dfc2020_evaluate:
    """Colour, epitome, ensemble and distilled FCN against the DFC2020 labels: AA, OA, mIoU, mF1."""
    input:
        index=dataset_index("dfc2020"),
        meta=dataset_meta("dfc2020"),
        predictions=expand("results/lsr/dfc2020/{variant}/index.csv", variant=DFC2020_ROWS.values()),
    output:
        table=report("results/tables/dfc2020_lsr.csv", caption="captions/dfc2020_table.rst", category="DFC2020"),
        markdown="results/tables/dfc2020_lsr.md",
        figure=report(
            "results/lsr/dfc2020/comparison.png", caption="captions/dfc2020_comparison.rst", category="DFC2020"
        ),
    params:
        reading=reading_settings(EPITOME["dfc2020"]),
        table=canonical(EPITOME["dfc2020"]["table"]),
        rows=list(DFC2020_ROWS),
        preview_tiles=EPITOME["preview_tiles"],
    threads: 1
    resources:
        mem_mb=EPITOME["mem_mb"],
        runtime=EPITOME["runtime"],
    log:
        "logs/dfc2020_evaluate/dfc2020.log",
    benchmark:
        "benchmarks/dfc2020_evaluate/dfc2020.tsv"
    conda:
        "../envs/eolabels.yaml"
    script:
        "../workflow_scripts/dfc2020_evaluate.py"
