"""The synthetic generator's settings have defaults in two places on purpose: config/schema.yaml (what
a workflow run gets) and the dataclasses of eolabels.data.synthetic (what the Python API gets).  These
tests keep the two from drifting apart, field by field, and check the schema names no field the
dataclasses lack (and the other way round)."""

from dataclasses import fields

import pytest
import yaml

from eolabels.data.synthetic import DATASETS, PARAMS


@pytest.fixture(scope="module")
def generator_schema(repo_root):
    schema = yaml.safe_load((repo_root / "config" / "schema.yaml").read_text())
    return schema["properties"]["synthetic"]["properties"]


@pytest.mark.parametrize("dataset", DATASETS)
def test_schema_and_dataclass_name_the_same_fields(generator_schema, dataset):
    schema_fields = set(generator_schema[dataset]["properties"])
    dataclass_fields = {f.name for f in fields(PARAMS[dataset])}
    assert schema_fields == dataclass_fields


@pytest.mark.parametrize("dataset", DATASETS)
def test_schema_defaults_equal_dataclass_defaults(generator_schema, dataset):
    defaults = PARAMS[dataset]()
    for name, spec in generator_schema[dataset]["properties"].items():
        assert "default" in spec, f"synthetic.{dataset}.{name} has no schema default"
        expected = getattr(defaults, name)
        value = spec["default"]
        if isinstance(expected, tuple):
            value = tuple(value)
        assert value == expected, f"synthetic.{dataset}.{name}: schema {value!r} vs dataclass {expected!r}"
