# Config validation, the stages' config sections, the wildcard constraints, path helpers and the targets of
# `all`. Everything rule files share is defined here, in the first include, from the schemas and the
# stages' wiring functions: no rule file reads a global of another, so their include order is irrelevant.
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, validate

from eolabels.acquisition.wiring import source_errors
from eolabels.alignment.wiring import alignment_tables, alignment_targets
from eolabels.cromss.wiring import pretrain_tables, pretrain_targets, run_pattern, schema_choices
from eolabels.data.local import local_inputs
from eolabels.data.wiring import acquired_datasets, osm_filter_tables, osm_filter_targets, source_name, synthetic_section
from eolabels.epitome.wiring import epitome_tables, epitome_targets, lsr_datasets, lsr_table
from eolabels.finetune.wiring import check_external, finetune_tables, finetune_targets, rows as finetune_rows
from eolabels.similarity.wiring import audit_tables, audit_targets, similarity_tables, similarity_targets, trains_segmenter
from eolabels.workflow import (
    canonical,
    config_errors,
    dataset_index,
    dataset_meta,
    dataset_sources,
    job_resources,
    one_of,
    schema_enum,
    setting_conflicts,
)

min_version("8.20")

SCHEMA = Path(workflow.basedir) / "config" / "schema.yaml"
# Each method stage owns one config section with its own schema: config/schemas/<section>.yaml.
STAGE_SCHEMAS = {path.stem: path for path in sorted((Path(workflow.basedir) / "config" / "schemas").glob("*.yaml"))}



def validated(values, schema, where):
    """Validate (filling in the schema's defaults); on failure, one line per problem with its full key."""
    try:
        validate(values, schema=str(schema), set_default=True)
    except WorkflowError:
        problems = config_errors(values, schema, where)
        if not problems:
            raise
        files = ", ".join(map(str, workflow.configfiles)) or "no config file"
        raise WorkflowError(
            f"invalid configuration (from {files}, with any --config values on top):\n  " + "\n  ".join(problems)
        ) from None


validated(config, SCHEMA, "config")
for _section, _section_schema in STAGE_SCHEMAS.items():
    validated(config.setdefault(_section, {}), _section_schema, f"config.{_section}")
if setting_conflicts(config):
    raise WorkflowError(
        f"conflicting settings (from {', '.join(map(str, workflow.configfiles))}):\n  "
        + "\n  ".join(setting_conflicts(config))
    )

DATASETS = config["datasets"]
# every dataset the workflow knows: the schema's enum of config.datasets
ALL_DATASETS = schema_enum(SCHEMA, "datasets")
# the datasets the acquire rules write (noldo_raw and osm_raw become noldo and osm in rules/assemble.smk)
# class schemas and transfer tables are data: rules that read them list them as inputs, so editing a
# table re-runs what depends on it
TABLE_FILES = sorted(str(p) for p in (Path(workflow.basedir) / "config" / "tables").glob("*.csv"))

CROMSS = config["cromss"]
EPITOME = config["epitome"]
SIMILARITY = config["similarity"]
FINETUNE = config["finetune"]
ALIGNMENT = config["alignment"]
# every pretraining variant and S2 band set (the cromss schema's enums)
CROMSS_CHOICES = schema_choices(STAGE_SCHEMAS["cromss"])
# the generated datasets the epitome stage runs on, and its LSR table's name (after its data)
LSR_DATASETS = lsr_datasets(STAGE_SCHEMAS["epitome"], DATASETS)
# each dataset's source (config.source: one name, or one per dataset)
SOURCES = dataset_sources(config["source"], ALL_DATASETS)
if source_errors(SOURCES, DATASETS):
    raise WorkflowError("\n".join(source_errors(SOURCES, DATASETS)))
LSR_TABLE = lsr_table(SOURCES["lsr"], config["local"])


def datasets_from(source):
    """The datasets of config.datasets that come from ``source``."""
    return [d for d in DATASETS if SOURCES[d] == source]


_unconfigured = [d for d in datasets_from("local") if d not in config["local"]]
if _unconfigured:
    raise WorkflowError(
        f"source is 'local' for datasets {_unconfigured} but config.local has no entry for them: "
        "add their format and paths, or remove them from config.datasets"
    )
# the files each local import reads, listed (and the download checked) once, here: a missing or
# partial download stops the workflow before any job runs
LOCAL_INPUTS, _download_errors = {}, []
for _dataset in datasets_from("local"):
    try:
        LOCAL_INPUTS[_dataset] = [str(p) for p in local_inputs(_dataset, config["local"][_dataset])]
    except ValueError as _err:
        _download_errors.append(f"config.local.{_dataset}: {_err}")
if _download_errors:
    raise WorkflowError("local data not ready:\n  " + "\n  ".join(_download_errors))


# the fine-tuning table rows (task x input x encoder source); a listed local weight file that is missing
# fails here, naming its row, before any job runs
_missing_weights = check_external(FINETUNE)
if _missing_weights:
    raise WorkflowError("\n".join(_missing_weights))
FINETUNE_ROWS = finetune_rows(
    FINETUNE, CROMSS, DATASETS,
    denoised_available=trains_segmenter(SIMILARITY, DATASETS) and SIMILARITY["dataset"] == CROMSS["dataset"],
)


# every wildcard of every rule, constrained to what the schemas allow
wildcard_constraints:
    dataset=one_of(ALL_DATASETS),
    lsr_dataset=one_of(lsr_datasets(STAGE_SCHEMAS["epitome"], ALL_DATASETS)),
    lsr_variant=one_of(schema_enum(STAGE_SCHEMAS["epitome"], "lsr", "variants")),
    pretrain_variant=one_of(CROMSS_CHOICES.variants),
    s2_bands=one_of(CROMSS_CHOICES.band_sets),
    # a pretraining run <variant>_<bands>, in the audits of pretrained networks
    variant=run_pattern(CROMSS_CHOICES),
    # Table VI's label-smoothing pretraining runs, ls<beta>-<alpha>
    ls_setting=r"ls[0-9.]+-[0-9.]+",
    task=one_of(schema_enum(STAGE_SCHEMAS["finetune"], "tasks")),
    ft_input=one_of(["s1"] + [f"s2_{b}" for b in CROMSS_CHOICES.band_sets]),
    ft_source=r"[A-Za-z0-9_.-]+",
    round=r"[1-9][0-9]*",


def datacards():
    return expand("results/data/{dataset}/datacard.json", dataset=DATASETS) + expand(
        "results/data/{dataset}/preview.png", dataset=DATASETS
    )


def generator_params(wildcards):
    """The config values one dataset depends on: changing another dataset's never re-runs this one.

    Keys are sorted so that reordering or reformatting the YAML does not count as a change.
    """
    return synthetic_section(config["synthetic"], wildcards.dataset)


def local_settings(wildcards):
    return dict(sorted(config["local"][source_name(wildcards.dataset)].items()))


def local_files(wildcards):
    """The real files a local import reads (checked when the workflow was loaded)."""
    return LOCAL_INPUTS[source_name(wildcards.dataset)]


# The result tables (CSV, with a Markdown twin beside them) the summary report shows, stage by stage.
REPORT_TABLES = (
    audit_tables(SIMILARITY, CROMSS, DATASETS)
    + similarity_tables(SIMILARITY, DATASETS)
    + epitome_tables(LSR_DATASETS, LSR_TABLE)
    + pretrain_tables(CROMSS, DATASETS)
    + osm_filter_tables(DATASETS)
    + finetune_tables(FINETUNE, FINETUNE_ROWS)
    + alignment_tables(ALIGNMENT, DATASETS)
)


def all_targets():
    """What `all` builds: the data cards and every stage's figures and tables."""
    return (
        datacards()
        + audit_targets(SIMILARITY, CROMSS, DATASETS)
        + similarity_targets(SIMILARITY, DATASETS)
        + epitome_targets(EPITOME, LSR_DATASETS, LSR_TABLE)
        + pretrain_targets(CROMSS, DATASETS)
        + osm_filter_targets(DATASETS)
        + finetune_targets(FINETUNE, FINETUNE_ROWS)
        + alignment_targets(ALIGNMENT, DATASETS)
    )
