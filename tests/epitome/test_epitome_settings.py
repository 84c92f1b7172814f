"""Epitome settings against config/schemas/epitome.yaml: the schema is the only source of defaults for a
workflow run, and the dataclass defaults (the Python API) never drift from it."""

from __future__ import annotations

from dataclasses import MISSING, asdict, fields

import pytest
import yaml
from schema_defaults import REPO_ROOT, assert_defaults_match, schema_section
from snakemake.utils import validate

from eolabels.epitome.settings import (
    ColourSettings,
    DistillSettings,
    EMSettings,
    EmbedSettings,
    EpitomeSettings,
    ReconstructSettings,
    SelfEpitomicSettings,
)
from eolabels.settings import from_section

SCHEMA = "schemas/epitome.yaml"
# (dataset, subsection) → the settings class built from it
SECTIONS = {
    ("lsr", "epitome"): EpitomeSettings,
    ("lsr", "embed"): EmbedSettings,
    ("lsr", "em"): EMSettings,
    ("lsr", "reconstruct"): ReconstructSettings,
    ("lsr", "self_epitomic"): SelfEpitomicSettings,
    ("lsr", "colour"): ColourSettings,
    ("dfc2020", "epitome"): EpitomeSettings,
    ("dfc2020", "embed"): EmbedSettings,
    ("dfc2020", "em"): EMSettings,
    ("dfc2020", "reconstruct"): ReconstructSettings,
    ("dfc2020", "colour"): ColourSettings,
    ("dfc2020", "distill"): DistillSettings,
}


def required_keys(dataset: str, section: str) -> tuple[str, ...]:
    """Keys the schema requires in a subsection (it then gives their defaults per dataset)."""
    schema = yaml.safe_load((REPO_ROOT / "config" / SCHEMA).read_text())
    node = schema["properties"][dataset]["properties"][section]
    if "$ref" in node:
        node = schema["$defs"][node["$ref"].removeprefix("#/$defs/")]
    return tuple(node.get("required", ()))


@pytest.mark.parametrize(("dataset", "section"), list(SECTIONS))
def test_dataclass_defaults_are_the_schema_defaults(dataset, section):
    cls = SECTIONS[dataset, section]
    required = required_keys(dataset, section)
    assert_defaults_match(cls, SCHEMA, dataset, section, skip=required)
    # a key the schema requires has no dataclass default either: the API caller passes it too
    assert all(f.default is MISSING for f in fields(cls) if f.name in required)
    assert {f.name for f in fields(cls)} == set(schema_section(SCHEMA, dataset, section))


@pytest.mark.parametrize("configfile", ["config.yaml", "test.yaml", "paper.yaml"])
def test_every_section_of_a_shipped_config_builds_its_settings(configfile):
    config = yaml.safe_load((REPO_ROOT / "config" / configfile).read_text()).get("epitome", {})
    validate(config, str(REPO_ROOT / "config" / SCHEMA), set_default=True)
    for (dataset, section), cls in SECTIONS.items():
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in config[dataset][section].items()}
        assert asdict(from_section(cls, config[dataset][section])) == values


def test_embed_samples_come_from_the_schema_not_the_dataclass():
    config: dict = {}
    validate(config, str(REPO_ROOT / "config" / SCHEMA), set_default=True)
    assert from_section(EmbedSettings, config["lsr"]["embed"]).samples == 4096
    assert from_section(SelfEpitomicSettings, config["lsr"]["self_epitomic"]).samples == 5000
    with pytest.raises(KeyError, match="EpitomeSettings"):
        from_section(EpitomeSettings, {"side": 8, "iterations": 2, "patch_sizes": [3]})


def test_posterior_switch_comes_from_the_schema():
    # exact by default in every section that forms posteriors; topk with the schema's K, stride, check
    config: dict = {"lsr": {"self_epitomic": {"posterior": "topk"}}}
    validate(config, str(REPO_ROOT / "config" / SCHEMA), set_default=True)
    settings = from_section(SelfEpitomicSettings, config["lsr"]["self_epitomic"])
    assert settings.topk() is not None and settings.topk().candidates == settings.topk_candidates == 64
    assert from_section(EmbedSettings, config["lsr"]["embed"]).topk() is None
    config = {"lsr": {"embed": {"patch_size": 3, "samples": 8, "posterior": "topk"}}}
    validate(config, str(REPO_ROOT / "config" / SCHEMA), set_default=True)
    assert from_section(EmbedSettings, config["lsr"]["embed"]).topk().candidates == 256  # peaky posteriors
    assert from_section(ReconstructSettings, config["dfc2020"]["reconstruct"]).posterior == "exact"
    with pytest.raises(Exception, match="approximate"):
        validate({"lsr": {"embed": {"patch_size": 3, "samples": 8, "posterior": "approximate"}}},
                 str(REPO_ROOT / "config" / SCHEMA))
