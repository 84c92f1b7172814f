"""The schema choices and dataset paths every rule file shares (eolabels/workflow.py), on known answers."""

from __future__ import annotations

import re

from eolabels.workflow import dataset_index, dataset_meta, denoised_dataset, one_of, schema_enum, schema_sections


def test_schema_enum_reads_string_and_list_keys(repo_root):
    assert schema_enum(repo_root / "config" / "schema.yaml", "datasets") == ["noldo", "dw", "osm", "dfc2020", "lsr"]
    assert schema_enum(repo_root / "config" / "schema.yaml", "source") == ["synthetic", "local"]
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


def test_dataset_paths():
    assert dataset_index("dw") == "results/data/dw/index.csv"
    assert dataset_meta("{lsr_dataset}") == "results/data/{lsr_dataset}/dataset.json"
    assert denoised_dataset("noldo") == "noldo_denoised"
