"""Settings dataclasses built from validated config sections.

For a workflow run the config schema (``config/schema.yaml``, ``config/schemas/<stage>.yaml``) is the
only source of defaults: Snakemake fills them in at load time. ``from_section`` therefore indexes every
field and never falls back to a dataclass default, so a default changed in the schema is the default a
run gets. Dataclass defaults stay for the Python API; ``tests/schema_defaults.py`` keeps them equal to
the schema's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields, is_dataclass
from typing import Any, TypeVar

T = TypeVar("T")


def from_section(cls: type[T], section: Mapping[str, Any], **overrides: Any) -> T:
    """``cls`` from a validated config section: every init field read from it, lists as tuples.

    Keys the dataclass does not have are left alone (a section also holds job resources and nested
    sections for other classes); ``overrides`` replace fields that are built elsewhere (nested
    dataclasses, derived values). A missing key raises ``KeyError`` naming the class and the keys:
    the section was not validated against its schema.
    """
    if not is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    names = [f.name for f in fields(cls) if f.init]
    missing = [n for n in names if n not in section and n not in overrides]
    if missing:
        raise KeyError(
            f"{cls.__name__}: config section lacks {missing}; validate it against its schema first "
            "(the schema holds the defaults)"
        )
    values = {n: overrides[n] if n in overrides else _frozen(section[n]) for n in names}
    return cls(**values)


def _frozen(value: Any) -> Any:
    return tuple(_frozen(v) for v in value) if isinstance(value, list) else value
