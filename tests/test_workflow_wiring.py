"""The schema choices and dataset paths every rule file shares (eolabels/workflow.py), on known answers."""

from __future__ import annotations

import re

from eolabels.workflow import (
    config_errors, dataset_index, dataset_meta, dataset_sources, denoised_dataset, one_of, schema_enum, schema_sections,
)


def test_schema_enum_reads_string_and_list_keys(repo_root):
    assert schema_enum(repo_root / "config" / "schema.yaml", "datasets") == ["noldo", "dw", "osm", "dfc2020", "lsr"]
    epitome = repo_root / "config" / "schemas" / "epitome.yaml"
    assert schema_enum(epitome, "lsr", "variants") == ["naive", "colour", "self_epitomic", "epitome"]
    assert schema_enum(epitome, "dfc2020", "split") == ["validation", "test"]


def test_schema_sections_keep_the_schema_order(repo_root):
    sections = schema_sections(repo_root / "config" / "schemas" / "epitome.yaml")
    assert sections[:4] == ["threads", "mem_mb", "runtime", "preview_tiles"]
    assert sections.index("lsr") < sections.index("dfc2020")


def test_one_of_matches_exactly_one_choice():
    pattern = re.compile(f"(?:{one_of(['dw', 'noldo', 'last_block+head'])})")
    assert pattern.fullmatch("dw") and pattern.fullmatch("last_block+head")
    assert not pattern.fullmatch("noldo_denoised") and not pattern.fullmatch("last_blockhead")


def test_one_of_no_choices_matches_nothing():
    pattern = re.compile(f"(?:{one_of([])})")
    assert not pattern.fullmatch("") and not pattern.fullmatch("dw")


def test_source_is_one_name_or_one_per_dataset(repo_root):
    datasets = ["noldo", "dw", "dfc2020"]
    assert dataset_sources("local", datasets) == {"noldo": "local", "dw": "local", "dfc2020": "local"}
    assert dataset_sources({"dfc2020": "local"}, datasets) == {"noldo": "synthetic", "dw": "synthetic", "dfc2020": "local"}
    schema = repo_root / "config" / "schema.yaml"
    assert config_errors({"source": {"dfc2020": "local", "lsr": "synthetic"}}, schema) == []
    assert config_errors({"source": {"dfc": "local"}}, schema) == [
        "config.source: {'dfc': 'local'} is not valid under any of the given schemas (Additional properties are not "
        "allowed ('dfc' was unexpected); {'dfc': 'local'} is not of type 'string'; {'dfc': 'local'} is not one of "
        "['synthetic', 'local', 'earthengine'])"
    ]


def test_dataset_paths():
    assert dataset_index("dw") == "results/data/dw/index.csv"
    assert dataset_meta("{lsr_dataset}") == "results/data/{lsr_dataset}/dataset.json"
    assert denoised_dataset("noldo") == "noldo_denoised"
