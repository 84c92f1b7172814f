# Config validation, path helpers and wildcard constraints shared by every rule.
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, validate

from eolabels.data.local import local_inputs

min_version("8.20")

validate(config, schema="../config/schema.yaml", set_default=True)

# Each method stage owns one config section with its own schema: config/schemas/<section>.yaml.
for _section_schema in sorted((Path(workflow.basedir) / "config" / "schemas").glob("*.yaml")):
    validate(config.setdefault(_section_schema.stem, {}), schema=str(_section_schema), set_default=True)

DATASETS = config["datasets"]
# class schemas and transfer tables are data: rules that read them list them as inputs, so editing a
# table re-runs what depends on it
TABLE_FILES = sorted(str(p) for p in (Path(workflow.basedir) / "config" / "tables").glob("*.csv"))
ALL_DATASETS = ["noldo", "dw", "osm", "dfc2020", "lsr"]

if config["source"] == "local":
    _unconfigured = [d for d in DATASETS if d not in config["local"]]
    if _unconfigured:
        raise WorkflowError(
            f"source is 'local' but config.local has no entry for datasets {_unconfigured}: "
            "add their format and paths, or remove them from config.datasets"
        )


wildcard_constraints:
    dataset="|".join(ALL_DATASETS),


def dataset_index(dataset):
    return f"results/data/{dataset}/index.csv"


def datacards():
    return expand("results/data/{dataset}/datacard.json", dataset=DATASETS) + expand(
        "results/data/{dataset}/preview.png", dataset=DATASETS
    )


def generator_params(wildcards):
    """The config values one dataset depends on: changing another dataset's never re-runs this one.

    Keys are sorted so that reordering or reformatting the YAML does not count as a change.
    """
    return dict(sorted(config["synthetic"][wildcards.dataset].items()))


def local_settings(wildcards):
    return dict(sorted(config["local"][wildcards.dataset].items()))


def local_files(wildcards):
    """The real files a local import reads; missing ones fail the DAG with their path."""
    return [str(p) for p in local_inputs(wildcards.dataset, config["local"][wildcards.dataset])]


# Extension points for method stages: each rules/<stage>.smk registers what `all` builds and which
# result tables (CSV, with a Markdown twin beside them) the summary report shows.
TARGETS = {"data": datacards()}
REPORT_TABLES = []


def all_targets():
    return [path for paths in TARGETS.values() for path in paths]
