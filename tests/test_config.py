"""The config schema: defaults filled, wrong keys and types rejected with a message naming them."""

import copy

import pytest
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

SCHEMA = "config/schema.yaml"


@pytest.fixture
def schema(repo_root):
    return str(repo_root / SCHEMA)


@pytest.mark.parametrize("name", ["config.yaml", "test.yaml", "paper.yaml"])
def test_shipped_configs_validate(repo_root, schema, name):
    config = yaml.safe_load((repo_root / "config" / name).read_text())
    validate(config, schema, set_default=True)
    assert config["synthetic"]["noldo"]["target_accuracy"] == pytest.approx(0.70)


def test_defaults_are_filled(schema):
    config = {}
    validate(config, schema, set_default=True)
    assert config["source"] == "synthetic" and config["seed"] == 0
    assert config["synthetic"]["osm"]["misregistration_px"] == 3.0
    assert config["datasets"] == ["noldo", "dw", "osm", "dfc2020", "lsr"]


def _error(config, schema):
    with pytest.raises(WorkflowError) as err:
        validate(config, schema, set_default=True)
    return str(err.value)


def test_wrong_type_names_the_key(schema):
    message = _error({"synthetic": {"noldo": {"n_locations": "many"}}}, schema)
    assert "n_locations" in message and "'many' is not of type 'integer'" in message


def test_unknown_key_is_rejected(schema):
    message = _error({"synthetic": {"noldo": {"n_location": 3}}}, schema)
    assert "n_location" in message and "Additional properties" in message


def test_out_of_range_and_bad_enum(schema):
    assert "target_accuracy" in _error({"synthetic": {"noldo": {"target_accuracy": 1.5}}}, schema)
    assert "sentinel" in _error({"source": "sentinel"}, schema)
    assert "device" in _error({"device": "tpu"}, schema)


def test_validation_does_not_change_given_values(repo_root, schema):
    config = yaml.safe_load((repo_root / "config" / "test.yaml").read_text())
    before = copy.deepcopy(config)
    validate(config, schema, set_default=True)
    assert config["synthetic"]["noldo"]["n_locations"] == before["synthetic"]["noldo"]["n_locations"]


def test_config_errors_name_each_problem_by_its_full_key(tmp_path):
    from eolabels.workflow import config_errors

    schema = tmp_path / "schema.yaml"
    schema.write_text(yaml.safe_dump({
        "type": "object", "additionalProperties": False,
        "properties": {"train": {"type": "object", "properties": {"steps": {"type": "integer", "minimum": 1}}}},
    }))
    assert config_errors({"train": {"steps": 5}}, schema) == []
    assert config_errors({"train": {"steps": 0}, "typo": 1}, schema, "config.stage") == [
        "config.stage: Additional properties are not allowed ('typo' was unexpected)",
        "config.stage.train.steps: 0 is less than the minimum of 1",
    ]
