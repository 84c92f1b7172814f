# The summary report: one page over every stage's outputs.


rule summarize_results:
    """Collect the data cards and every stage's result table (rules/common.smk) into results/report/."""
    input:
        cards=expand("results/data/{dataset}/datacard.json", dataset=DATASETS),
        tables=REPORT_TABLES,
    output:
        markdown=report(
            "results/report/summary.md",
            caption="captions/summary.rst",
            category="Summary",
        ),
        table="results/report/datasets.csv",
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    log:
        "logs/summarize_results/summary.log",
    conda:
        "../envs/eolabels.yaml"
    script:
        "../workflow_scripts/summarize_results.py"
