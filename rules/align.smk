# Multi-scale alignment of misregistered maps (specs/netsimilarity.md §3.1, §4, §5.c): per round a chain of
# scale networks trained on the current maps aligns the original maps of config.alignment.dataset; the last
# round's maps become the dataset `<dataset>_aligned`. OSM labels that go through the OSM↔DW filter are
# aligned on their θ = 0 join with the DW tiles (osm_joined, rules/assemble.smk), and the filter then runs
# on the aligned maps. What `all` builds of it: rules/common.smk.
from eolabels.alignment.wiring import aligned_dataset, alignment_input, round_dir, round_inputs, table_inputs
from eolabels.data.wiring import acquired_name
from eolabels.workflow import dataset_index, dataset_meta

ALIGN_EXPORT = aligned_dataset(ALIGNMENT["dataset"])
ALIGN_INPUT = alignment_input(ALIGNMENT["dataset"], acquired_name("osm", SOURCES["osm"]) != "osm")


rule align_round:
    """One round (spec §3.1): train the scale networks on D_(r-1), align the original maps into D_r."""
    input:
        unpack(lambda wildcards: round_inputs(ALIGN_INPUT, int(wildcards.round))),
    output:
        networks=directory("results/alignment/round{round}/networks"),
        index="results/alignment/round{round}/dataset/index.csv",
        meta="results/alignment/round{round}/dataset/dataset.json",
        fields="results/alignment/round{round}/fields.npz",
        metrics="results/alignment/round{round}/metrics.json",
        neighbours="results/alignment/round{round}/neighbours.npz",
        neighbours_figure=report(
            "results/alignment/round{round}/neighbours.png",
            caption="captions/alignment_neighbours.rst",
            category="Map alignment",
            subcategory="what the network groups together",
        ),
    params:
        alignment=canonical(ALIGNMENT),
        seed=config["seed"],
        device=config["device"],
    threads: ALIGNMENT["threads"]
    resources:
        **job_resources(ALIGNMENT),
    log:
        "logs/align_round/round{round}.log",
    benchmark:
        "benchmarks/align_round/round{round}.tsv"
    conda:
        "../envs/eolabels.yaml"
    script:
        "../workflow_scripts/align_round.py"


rule tabulate_alignment:
    """The per-round table and figures; the last round's maps exported as results/data/<dataset>_aligned."""
    input:
        **table_inputs(ALIGNMENT, ALIGN_INPUT),
    output:
        table="results/tables/alignment.csv",
        markdown=report(
            "results/tables/alignment.md",
            caption="captions/alignment_table.rst",
            category="Map alignment",
        ),
        curves=report(
            "results/alignment/threshold_curves.png",
            caption="captions/alignment_curves.rst",
            category="Map alignment",
        ),
        figure=report(
            "results/alignment/tile.png",
            caption="captions/alignment_tile.rst",
            category="Map alignment",
        ),
        histogram=report(
            "results/alignment/similarity_histogram.png",
            caption="captions/alignment_similarity_histogram.rst",
            category="Map alignment",
            subcategory="what the network groups together",
        ),
        index=dataset_index(ALIGN_EXPORT),
        meta=dataset_meta(ALIGN_EXPORT),
    params:
        alignment=canonical(ALIGNMENT),
    threads: ALIGNMENT["threads"]
    resources:
        mem_mb=ALIGNMENT["mem_mb"],
        runtime=ALIGNMENT["runtime"],
    log:
        "logs/tabulate_alignment/alignment.log",
    benchmark:
        "benchmarks/tabulate_alignment/alignment.tsv"
    conda:
        "../envs/eolabels.yaml"
    script:
        "../workflow_scripts/tabulate_alignment.py"
