# Acquisition of real data through Earth Engine (S1/S2, Dynamic World) and WMS (OSM land use), driven by
# location sheets and sharded into jobs (config.earthengine, config/schemas/earthengine.yaml). Off by
# default; config/earthengine.yaml turns it on. Each shard job keeps its finished locations in the folder
# beside its summary, so a killed or failed job resumes where it stopped.
from eolabels.acquisition.sheets import read_dw_tiles, read_locations
from eolabels.acquisition.wiring import acquired_index, acquired_meta, shard_settings, shard_summary, sheet_path
from eolabels.data.index import LAYOUT_VERSION

EARTHENGINE = config["earthengine"]


rule sample_locations:
    """A locations sheet of n seeded random points inside config/regions/<region>.geojson."""
    input:
        region="config/regions/{region}.geojson",
    output:
        sheet="results/acquisition/sheets/{region}.csv",
    params:
        n=EARTHENGINE["sample"]["n"],
        seed=EARTHENGINE["sample"]["seed"],
    wildcard_constraints:
        region="[A-Za-z0-9_-]+",
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    log:
        "logs/sample_locations/{region}.log",
    benchmark:
        "benchmarks/sample_locations/{region}.tsv"
    conda:
        "../envs/eolabels.yaml"
    script:
        "../workflow_scripts/sample_locations.py"


if EARTHENGINE["enabled"]:
    # a malformed sheet fails the dry run, naming its row
    for _dataset in EARTHENGINE["datasets"]:
        (read_locations if _dataset == "noldo" else read_dw_tiles)(sheet_path(EARTHENGINE, _dataset))

    rule acquire_shard:
        """Fetch one shard of a sheet (rate-limited, retried, resumable); failures go to its manifest."""
        input:
            sheet=lambda wildcards: sheet_path(EARTHENGINE, wildcards.dataset),
        output:
            summary=shard_summary("{dataset}", "{shard}"),
        params:
            settings=lambda wildcards: shard_settings(EARTHENGINE, wildcards.dataset),
            n_shards=EARTHENGINE["shards"],
        wildcard_constraints:
            shard="[0-9]+",
        threads: 1
        resources:
            mem_mb=EARTHENGINE["mem_mb"],
            runtime=EARTHENGINE["runtime"],
        log:
            "logs/acquire_shard/{dataset}/{shard}.log",
        benchmark:
            "benchmarks/acquire_shard/{dataset}/{shard}.tsv"
        conda:
            "../envs/eolabels.yaml"
        script:
            "../workflow_scripts/acquire_shard.py"

    rule merge_shards:
        """Build a dataset in the common layout from its shards' finished locations."""
        input:
            sheet=lambda wildcards: sheet_path(EARTHENGINE, wildcards.dataset),
            summaries=expand(shard_summary("{{dataset}}", "{shard}"), shard=range(EARTHENGINE["shards"])),
            tables=TABLE_FILES,
        output:
            index=acquired_index("{dataset}"),
            meta=acquired_meta("{dataset}"),
        params:
            settings=lambda wildcards: shard_settings(EARTHENGINE, wildcards.dataset),
            layout=LAYOUT_VERSION,
        threads: 1
        resources:
            mem_mb=4000,
            runtime=120,
        log:
            "logs/merge_shards/{dataset}.log",
        benchmark:
            "benchmarks/merge_shards/{dataset}.tsv"
        conda:
            "../envs/eolabels.yaml"
        script:
            "../workflow_scripts/merge_shards.py"
