"""Defaults declared in a config schema, for the drift tests between schemas and settings dataclasses."""

from __future__ import annotations

from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]


def schema_section(schema_file: str, *keys: str) -> dict[str, Any]:
    """The ``properties`` of the object at ``keys`` in ``config/<schema_file>`` (following a local
    ``$ref: "#/$defs/<name>"``)."""
    schema = node = yaml.safe_load((REPO_ROOT / "config" / schema_file).read_text())
    for key in keys:
        node = node["properties"][key]
        if "$ref" in node:
            node = schema["$defs"][node["$ref"].removeprefix("#/$defs/")]
    return node["properties"]


def assert_defaults_match(cls: type, schema_file: str, *keys: str, skip: tuple[str, ...] = ()) -> None:
    """Every init field of ``cls`` has a schema default equal to its dataclass default (lists as tuples)."""
    props = schema_section(schema_file, *keys)
    where = ".".join(keys) or schema_file
    for f in fields(cls):
        if not f.init or f.name in skip:
            continue
        assert f.name in props, f"{cls.__name__}.{f.name} is not in the schema at {where}"
        assert "default" in props[f.name], f"{where}.{f.name} has no schema default"
        if f.default is not MISSING:
            expected = f.default
        elif f.default_factory is not MISSING:
            expected = f.default_factory()
        else:
            continue
        value = props[f.name]["default"]
        if isinstance(value, list):
            value = tuple(value)
        assert value == expected, f"{where}.{f.name}: schema {value!r} vs {cls.__name__} {expected!r}"
