# From acquired to usable datasets (specs/cromss.md §6, §9): NoLDO-S12 assembly keeps the locations
# complete in every season; the OSM↔DW agreement filter keeps the DW tiles whose OSM labels agree with
# DW. Consumers read results/data/noldo and results/data/osm (eolabels.data.wiring). With the alignment
# stage enabled, the filter runs on the aligned OSM maps (rules/align.smk aligns the θ = 0 join).
from eolabels.data.index import LAYOUT_VERSION
from eolabels.data.wiring import (
    OSM_JOINED,
    acquired_name,
    filter_maps,
    osm_filter_inputs,
    osm_filter_paths,
    osm_filter_settings,
)

OSM_FILTER = config["osm_filter"]
OSM_FILTER_PATHS = osm_filter_paths()
try:
    OSM_FILTER_MAPS = filter_maps(OSM_FILTER, config["alignment"]["enabled"])
except ValueError as _err:
    raise WorkflowError(str(_err)) from None


rule assemble_noldo:
    """NoLDO-S12: the acquired locations with S1, S2 and a noisy label in all 4 seasons; the counts of
    what was dropped and why go into dataset.json and the data card."""
    input:
        index=dataset_index(acquired_name("noldo")),
        meta=dataset_meta(acquired_name("noldo")),
    output:
        index=dataset_index("noldo"),
        meta=dataset_meta("noldo"),
    params:
        layout=LAYOUT_VERSION,
    threads: 1
    resources:
        mem_mb=1000,
        runtime=30,
    log:
        "logs/assemble_noldo/noldo.log",
    benchmark:
        "benchmarks/assemble_noldo/noldo.tsv"
    conda:
        "../envs/eolabels.yaml"
    script:
        "../workflow_scripts/assemble_noldo.py"


rule filter_osm:
    """The OSM↔DW agreement per DW tile (Table I), the tiles with OA >= θ as the osm dataset, the
    kept counts for a sweep of θ and a histogram of the per-tile OA."""
    input:
        **osm_filter_inputs(OSM_FILTER, config["alignment"]["enabled"]),
        tables=TABLE_FILES,
    output:
        index=dataset_index("osm"),
        meta=dataset_meta("osm"),
        agreement=OSM_FILTER_PATHS["agreement"],
        table=OSM_FILTER_PATHS["table"],
        table_md=report(
            OSM_FILTER_PATHS["table_md"],
            caption="captions/osm_filter_table.rst",
            category="OSM↔DW filter",
            subcategory="table",
        ),
        histogram=report(
            OSM_FILTER_PATHS["histogram"],
            caption="captions/osm_filter_histogram.rst",
            category="OSM↔DW filter",
            subcategory="histogram",
        ),
    params:
        settings=osm_filter_settings(OSM_FILTER),
        role=OSM_FILTER["input"]["role"],
        maps=OSM_FILTER_MAPS,
        seed=config["seed"],
        layout=LAYOUT_VERSION,
    threads: config["dask"]["threads"]
    priority: 20  # the 16 OSM fine-tuning rows wait for it
    resources:
        mem_mb=OSM_FILTER["mem_mb"],
        runtime=OSM_FILTER["runtime"],
    log:
        "logs/filter_osm/osm.log",
    benchmark:
        "benchmarks/filter_osm/osm.tsv"
    conda:
        "../envs/eolabels.yaml"
    script:
        "../workflow_scripts/filter_osm.py"


rule join_osm:
    """The θ = 0 join of the OSM labels and the DW tiles (every tile, DW splits, OSM as is): what the
    alignment stage trains and aligns on before the filter (spec netsimilarity.md §5.c)."""
    input:
        dw_index=dataset_index("dw"),
        dw_meta=dataset_meta("dw"),
        osm_index=dataset_index(acquired_name("osm")),
        osm_meta=dataset_meta(acquired_name("osm")),
        tables=TABLE_FILES,
    output:
        index=dataset_index(OSM_JOINED),
        meta=dataset_meta(OSM_JOINED),
    params:
        layout=LAYOUT_VERSION,
    threads: 1
    resources:
        mem_mb=OSM_FILTER["mem_mb"],
        runtime=OSM_FILTER["runtime"],
    log:
        "logs/join_osm/osm_joined.log",
    benchmark:
        "benchmarks/join_osm/osm_joined.tsv"
    conda:
        "../envs/eolabels.yaml"
    script:
        "../workflow_scripts/join_osm.py"
