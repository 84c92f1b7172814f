# Acquisition of real data through Earth Engine (S1/S2, Dynamic World) and WMS (OSM land use), driven by
# location sheets and sharded into jobs (config.earthengine, config/schemas/earthengine.yaml). A dataset
# whose config.source is earthengine is fetched here and merged into results/data/<its acquired name>
# (noldo_raw, dw, osm_raw), where assembly, the OSM↔DW filter and every later stage read it; the source
# map is the only list of what to fetch (eolabels.acquisition.wiring). Each shard job keeps its finished
# locations in the folder beside its summary, so a killed or failed job resumes where it stopped.
from eolabels.acquisition.sheets import read_dw_tiles, read_locations
from eolabels.acquisition.wiring import fetched_datasets, merged_datasets, shard_settings, shard_summaries, shard_summary, sheet_path
from eolabels.data.index import LAYOUT_VERSION

EARTHENGINE = config["earthengine"]
# the datasets fetched (results/acquisition/<name>) and the ones merged from them (results/data/<name>)
EE_FETCHED = fetched_datasets(datasets_from("earthengine"))
EE_MERGED = merged_datasets(datasets_from("earthengine"))


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


if EE_FETCHED:
    # a malformed sheet, or dw without its label tiles, fails the dry run
    for _dataset in EE_FETCHED:
        (read_locations if _dataset == "noldo" else read_dw_tiles)(sheet_path(EARTHENGINE, _dataset))
    if "dw" in EE_FETCHED and not EARTHENGINE["dw_tiles"]["label_dir"]:
        raise WorkflowError(
            "config.earthengine.dw_tiles.label_dir is empty: dw from earthengine takes its labels from the "
            "expert / consensus label tiles <label_dir>/<dw_id>.tif"
        )

    rule acquire_shard:
        """Fetch one shard of a sheet (rate-limited, retried, resumable); failures go to its manifest."""
        wildcard_constraints:
            dataset=one_of(EE_FETCHED),
            shard="[0-9]+",
        input:
            sheet=lambda wildcards: sheet_path(EARTHENGINE, wildcards.dataset),
        output:
            summary=shard_summary("{dataset}", "{shard}"),
        params:
            settings=lambda wildcards: shard_settings(EARTHENGINE, wildcards.dataset),
            n_shards=EARTHENGINE["shards"],
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
        """Build a dataset in the common layout (results/data) from its shards' finished locations."""
        wildcard_constraints:
            dataset=one_of(EE_MERGED),
        input:
            sheet=lambda wildcards: sheet_path(EARTHENGINE, source_name(wildcards.dataset)),
            summaries=lambda wildcards: shard_summaries(source_name(wildcards.dataset), EARTHENGINE["shards"]),
            tables=TABLE_FILES,
        output:
            index=dataset_index("{dataset}"),
            meta=dataset_meta("{dataset}"),
        params:
            fetched=lambda wildcards: source_name(wildcards.dataset),
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
