# Acquisition: raw data into the common dataset layout (dataset.json + index.csv + GeoTIFFs).
from eolabels.data.index import LAYOUT_VERSION


rule acquire_synthetic:
    """Generate one dataset of the embedded synthetic world (its config.source is 'synthetic')."""
    wildcard_constraints:
        dataset=one_of(acquired_datasets(datasets_from("synthetic"), "synthetic")),
    input:
        tables=TABLE_FILES,
    output:
        index=dataset_index("{dataset}"),
        meta=dataset_meta("{dataset}"),
    params:
        generator=generator_params,
        seed=config["seed"],
        source=lambda wildcards: SOURCES[source_name(wildcards.dataset)],
        layout=LAYOUT_VERSION,
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    log:
        "logs/acquire_synthetic/{dataset}.log",
    benchmark:
        "benchmarks/acquire_synthetic/{dataset}.tsv"
    conda:
        "../envs/eolabels.yaml"
    script:
        "../workflow_scripts/acquire_synthetic.py"


rule acquire_local:
    """Import one dataset from already-downloaded files (its config.source is 'local')."""
    wildcard_constraints:
        dataset=one_of(acquired_datasets(datasets_from("local"), "local")),
    input:
        local_files,
        tables=TABLE_FILES,
    output:
        index=dataset_index("{dataset}"),
        meta=dataset_meta("{dataset}"),
    params:
        settings=local_settings,
        source=lambda wildcards: SOURCES[source_name(wildcards.dataset)],
        layout=LAYOUT_VERSION,
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    log:
        "logs/acquire_local/{dataset}.log",
    benchmark:
        "benchmarks/acquire_local/{dataset}.tsv"
    conda:
        "../envs/eolabels.yaml"
    script:
        "../workflow_scripts/acquire_local.py"


rule write_datacard:
    """Measure a dataset from its files: sizes, class histograms, label quality, misregistration."""
    input:
        index=dataset_index("{dataset}"),
        meta=dataset_meta("{dataset}"),
        tables=TABLE_FILES,
    output:
        card="results/data/{dataset}/datacard.json",
        preview=report(
            "results/data/{dataset}/preview.png",
            caption="captions/preview.rst",
            category="Data cards",
            subcategory="{dataset}",
        ),
    params:
        preview_samples=config["report"]["preview_samples"],
    threads: config["dask"]["threads"]
    resources:
        mem_mb=2000,
        runtime=20,
    log:
        "logs/write_datacard/{dataset}.log",
    conda:
        "../envs/eolabels.yaml"
    script:
        "../workflow_scripts/write_datacard.py"
