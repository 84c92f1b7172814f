# Config validation, path helpers and wildcard constraints shared by every rule.
from snakemake.utils import min_version, validate

min_version("8.20")

validate(config, schema="../config/schema.yaml", set_default=True)

DATASETS = config["datasets"]
SYNTHETIC_DATASETS = ["noldo", "dw", "osm", "dfc2020", "lsr"]


wildcard_constraints:
    dataset="|".join(SYNTHETIC_DATASETS),


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
