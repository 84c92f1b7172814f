# From acquired to usable datasets (specs/cromss.md §6, §9): NoLDO-S12 assembly keeps the locations
# complete in every season; the OSM↔DW agreement filter keeps the DW tiles whose OSM labels agree with
# DW. Consumers read results/data/noldo and results/data/osm (eolabels.data.wiring).
from eolabels.data.index import LAYOUT_VERSION
from eolabels.data.wiring import acquired_name, osm_filter_inputs, osm_filter_paths, osm_filter_settings

OSM_FILTER = config["osm_filter"]
OSM_FILTER_PATHS = osm_filter_paths()


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
        **osm_filter_inputs(OSM_FILTER),
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
        seed=config["seed"],
        layout=LAYOUT_VERSION,
    threads: config["dask"]["threads"]
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
