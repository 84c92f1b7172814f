"""Class schemas and label-transfer tables, read from the CSV files in ``config/tables/``.

The design keeps every class list, palette and label-transfer table out of the code (DESIGN.md,
"Data contracts"), so this module only knows the *file conventions*, never a class:

* a schema ``<name>.csv`` has the columns ``id,name,color[,description]``;
* a one-to-one or many-to-many id map has the two columns ``<source>_id,<target>_id``, where
  ``<source>`` and ``<target>`` name schema files in the same folder;
* a probability table p(target | source) has a first column ``<source>_id`` and one column
  ``<target>.<class name>`` per target class.

Transfer tables are checked against the schemas their headers name: every source class must have a
row (a missing row would silently drop labels downstream) and every id must belong to its schema.
Every problem raises at load time with the file, line and offending value in the message.
"""

from __future__ import annotations

import csv
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:
    from matplotlib.colors import ListedColormap

TABLES_ENV = "EOLABELS_TABLES"
UNLABELLED = 255
"""Label value meaning "no label" in every uint8 label raster; a one-to-one map may send a class to it."""

ROW_SUM_ATOL = 1e-6
"""Tolerance on the row sums of a probability table that must sum to 1."""

ROUNDED_ROW_SUM_ATOL = 0.02
"""Row-sum tolerance for published tables rounded to two decimals (4 entries, each off by ≤ 0.005)."""

RowSums = Literal["exact", "renormalize", "as_listed"]

_COLOR_RE = re.compile(r"^#[0-9a-fA-F]{6}$")
_SCHEMA_COLUMNS = ("id", "name", "color")
_OPTIONAL_SCHEMA_COLUMNS = ("description",)


class TableError(ValueError):
    """A table file exists but its content breaks the conventions of ``config/tables/``."""


@dataclass(frozen=True)
class ClassSchema:
    """The classes of one label source: ids (as stored in rasters), names and display colours.

    Ids need not be contiguous (NLCD codes, Chesapeake 1–6 and 15), so positions in the tuples
    (``index_of``) and label ids are distinct notions; 255 is reserved for "unlabelled".
    """

    name: str
    ids: tuple[int, ...]
    names: tuple[str, ...]
    colors: tuple[str, ...]

    def __post_init__(self) -> None:
        if not (len(self.ids) == len(self.names) == len(self.colors)) or not self.ids:
            raise ValueError(
                f"schema {self.name!r}: ids, names and colors must be non-empty and equally long "
                f"(got {len(self.ids)}, {len(self.names)}, {len(self.colors)})"
            )
        if len(set(self.ids)) != len(self.ids):
            raise ValueError(f"schema {self.name!r}: duplicate ids in {self.ids}")
        bad = [i for i in self.ids if not 0 <= i < UNLABELLED]
        if bad:
            raise ValueError(
                f"schema {self.name!r}: ids {bad} outside 0..{UNLABELLED - 1} "
                f"({UNLABELLED} is reserved for unlabelled pixels)"
            )
        bad_colors = [c for c in self.colors if not _COLOR_RE.match(c)]
        if bad_colors:
            raise ValueError(f"schema {self.name!r}: colours {bad_colors} are not '#rrggbb'")

    @property
    def num_classes(self) -> int:
        """Number of classes, i.e. the width of a one-hot or logit axis over this schema."""
        return len(self.ids)

    def rgb(self) -> np.ndarray:
        """Colours as a (K, 3) float array in [0, 1], row k for the class at position k."""
        return np.array(
            [[int(c[i : i + 2], 16) for i in (1, 3, 5)] for c in self.colors], dtype=np.float64
        ) / 255.0

    def listed_colormap(self) -> ListedColormap:
        """A matplotlib colormap over class *positions* 0..K-1 (map ids with ``index_of`` first).

        matplotlib is imported here so that loading tables never pulls in a plotting backend.
        """
        from matplotlib.colors import ListedColormap

        return ListedColormap(list(self.colors), name=self.name)

    def index_of(self, class_id: int) -> int:
        """Position of a label id in this schema (e.g. NLCD 41 → 7)."""
        try:
            return self.ids.index(int(class_id))
        except ValueError:
            raise ValueError(f"id {class_id} is not a class of schema {self.name!r} {self.ids}") from None

    def validate_labels(self, arr: Any, ignore_index: int | None = UNLABELLED, *, where: str) -> None:
        """Fail if ``arr`` holds a label that is neither a class id nor ``ignore_index``.

        Out-of-schema labels would otherwise be silently dropped or wrapped by one-hot encodings
        and bincounts; ``where`` (a file or stage name) tells the user which input is broken.
        """
        a = np.asarray(arr)
        if a.dtype.kind not in "iu":
            if a.dtype.kind != "f" or not np.all(np.isfinite(a)) or np.any(a != np.round(a)):
                raise ValueError(f"{where}: labels must be integer class ids (got dtype {a.dtype})")
        values = np.unique(a).astype(np.int64)
        allowed = set(self.ids) | ({ignore_index} if ignore_index is not None else set())
        bad = [int(v) for v in values if int(v) not in allowed]
        if bad:
            raise ValueError(
                f"{where}: label id {bad[0]} is not in schema {self.name!r} "
                f"(ids {self.ids}, ignore index {ignore_index}); all offending ids: {bad}"
            )


def lookup_table(mapping: Mapping[int, int], dtype: type = np.uint8) -> np.ndarray:
    """A 256-entry array mapping ids through ``mapping`` (``lut[labels]``); unmapped ids → ``UNLABELLED``."""
    lut = np.full(256, UNLABELLED, dtype=dtype)
    for src, dst in mapping.items():
        lut[src] = dst
    return lut


def resolve_tables_dir(override: Path | str | None = None) -> Path:
    """Folder holding the tables: ``override``, else ``$EOLABELS_TABLES``, else the repo's copy."""
    if override is not None:
        return Path(override)
    env = os.environ.get(TABLES_ENV)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "config" / "tables"


def load_schema(name: str, tables_dir: Path | str | None = None) -> ClassSchema:
    """Read ``<name>.csv`` (columns ``id,name,color[,description]``) into a ``ClassSchema``."""
    path, header, rows = _read_table(name, tables_dir)
    missing = [c for c in _SCHEMA_COLUMNS if c not in header]
    extra = [c for c in header if c not in _SCHEMA_COLUMNS + _OPTIONAL_SCHEMA_COLUMNS]
    if missing or extra:
        raise TableError(
            f"{path}: schema columns must be id,name,color[,description]; "
            f"missing {missing}, unexpected {extra}"
        )
    ids: list[int] = []
    names: list[str] = []
    colors: list[str] = []
    for line, row in rows:
        class_id = _parse_int(row["id"], path, line, "id")
        if class_id in ids:
            raise TableError(f"{path}, line {line}: duplicate id {class_id}")
        if not 0 <= class_id < UNLABELLED:
            raise TableError(
                f"{path}, line {line}: id {class_id} outside 0..{UNLABELLED - 1} "
                f"({UNLABELLED} means unlabelled)"
            )
        class_name = row["name"].strip()
        if not class_name:
            raise TableError(f"{path}, line {line}: empty class name")
        if class_name in names:
            raise TableError(f"{path}, line {line}: duplicate class name {class_name!r}")
        color = row["color"].strip()
        if not _COLOR_RE.match(color):
            raise TableError(f"{path}, line {line}: colour {color!r} is not of the form '#rrggbb'")
        ids.append(class_id)
        names.append(class_name)
        colors.append(color.lower())
    return ClassSchema(name=name, ids=tuple(ids), names=tuple(names), colors=tuple(colors))


def load_mapping(name: str, tables_dir: Path | str | None = None) -> dict[int, int]:
    """Read a one-to-one id map ``<source>_id,<target>_id`` (e.g. IGBP → DFC2020).

    Every source class must appear exactly once; a target may be ``UNLABELLED`` (255) for classes
    that carry no usable label (Chesapeake "no data").
    """
    path, source, target, pairs = _read_pairs(name, tables_dir)
    mapping: dict[int, int] = {}
    for line, s, t in pairs:
        if s in mapping:
            raise TableError(f"{path}, line {line}: source id {s} is mapped twice (one-to-one table)")
        if t != UNLABELLED and t not in target.ids:
            raise TableError(
                f"{path}, line {line}: target id {t} is neither a class of {target.name!r} "
                f"{target.ids} nor {UNLABELLED} (unlabelled)"
            )
        mapping[s] = t
    _check_coverage(path, source, mapping)
    return mapping


def load_many_to_many(name: str, tables_dir: Path | str | None = None) -> dict[int, frozenset[int]]:
    """Read a many-to-many id map (one row per allowed pair, e.g. OSM → DW) into id → set of ids."""
    path, source, target, pairs = _read_pairs(name, tables_dir)
    sets: dict[int, set[int]] = {}
    for line, s, t in pairs:
        if t not in target.ids:
            raise TableError(
                f"{path}, line {line}: target id {t} is not a class of {target.name!r} {target.ids}"
            )
        if t in sets.get(s, ()):
            raise TableError(f"{path}, line {line}: duplicate pair ({s}, {t})")
        sets.setdefault(s, set()).add(t)
    _check_coverage(path, source, sets)
    return {s: frozenset(ts) for s, ts in sets.items()}


def load_transfer_matrix(
    name: str, tables_dir: Path | str | None = None, *, row_sums: RowSums = "exact"
) -> tuple[np.ndarray, list[int], list[int]]:
    """Read a probability table p(target | source) as ``(P, source_ids, target_ids)``.

    ``P[i, j] = p(target_ids[j] | source_ids[i])``, rows and columns in the order of the source and
    target schemas.  ``row_sums`` says how strictly rows must sum to 1:

    * ``"exact"``: within ``ROW_SUM_ATOL`` (1e-6);
    * ``"renormalize"``: within ``ROUNDED_ROW_SUM_ATOL`` (published two-decimal tables such as the
      NLCD table, whose rows sum to 0.99–1.01), then divided by their sums;
    * ``"as_listed"``: within ``ROUNDED_ROW_SUM_ATOL`` and returned unchanged, as the epitome code
      uses its table.
    """
    if row_sums not in ("exact", "renormalize", "as_listed"):
        raise ValueError(f"row_sums must be 'exact', 'renormalize' or 'as_listed', got {row_sums!r}")
    path, header, rows = _read_table(name, tables_dir)
    source = _schema_from_column(header[0], path, tables_dir)
    target_columns = header[1:]
    prefixes = {c.split(".", 1)[0] for c in target_columns}
    if not target_columns or len(prefixes) != 1 or not all("." in c for c in target_columns):
        raise TableError(
            f"{path}: probability columns must all be '<target schema>.<class name>' with one "
            f"target schema; got {target_columns}"
        )
    target = load_schema(prefixes.pop(), tables_dir)
    column_names = [c.split(".", 1)[1] for c in target_columns]
    unknown = [c for c in column_names if c not in target.names]
    absent = [c for c in target.names if c not in column_names]
    if unknown or absent or len(set(column_names)) != len(column_names):
        raise TableError(
            f"{path}: columns must name each class of {target.name!r} {target.names} once; "
            f"unknown {unknown}, absent {absent}, given {column_names}"
        )
    tol = ROW_SUM_ATOL if row_sums == "exact" else ROUNDED_ROW_SUM_ATOL
    by_source: dict[int, np.ndarray] = {}
    for line, row in rows:
        s = _parse_int(row[header[0]], path, line, header[0])
        if s not in source.ids:
            raise TableError(
                f"{path}, line {line}: source id {s} is not a class of {source.name!r} {source.ids}"
            )
        if s in by_source:
            raise TableError(f"{path}, line {line}: duplicate source id {s}")
        probs = np.array(
            [_parse_prob(row[col], path, line, col) for col in target_columns], dtype=np.float64
        )
        total = float(probs.sum())
        if abs(total - 1.0) > tol:
            hint = (
                "; for a published table rounded to two decimals load it with "
                "row_sums='renormalize' or 'as_listed'"
                if row_sums == "exact" and abs(total - 1.0) <= ROUNDED_ROW_SUM_ATOL
                else ""
            )
            raise TableError(
                f"{path}, line {line}: row {header[0]}={s} sums to {total:.6g}, "
                f"not 1 (tolerance {tol:g}){hint}"
            )
        if row_sums == "renormalize":
            probs = probs / total
        # reorder the file's columns into the target schema's order
        by_source[s] = probs[[column_names.index(n) for n in target.names]]
    _check_coverage(path, source, by_source)
    matrix = np.stack([by_source[s] for s in source.ids])
    return matrix, list(source.ids), list(target.ids)


def _read_table(
    name: str, tables_dir_override: Path | str | None
) -> tuple[Path, list[str], list[tuple[int, dict[str, str]]]]:
    """Header and (line number, row) pairs of ``<name>.csv``, with ragged rows rejected."""
    path = resolve_tables_dir(tables_dir_override) / f"{name}.csv"
    if not path.is_file():
        raise FileNotFoundError(f"table {name!r}: file {path} not found")
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = [h.strip() for h in next(reader, [])]
        if not header or not any(header):
            raise TableError(f"{path}: empty file (a header line is required)")
        if len(set(header)) != len(header):
            raise TableError(f"{path}: duplicate column names in header {header}")
        rows: list[tuple[int, dict[str, str]]] = []
        for fields in reader:
            if not fields or all(not f.strip() for f in fields):
                continue
            if len(fields) != len(header):
                raise TableError(
                    f"{path}, line {reader.line_num}: {len(fields)} fields, header has {len(header)}"
                )
            rows.append((reader.line_num, dict(zip(header, fields))))
    if not rows:
        raise TableError(f"{path}: no data rows")
    return path, header, rows


def _read_pairs(
    name: str, tables_dir_override: Path | str | None
) -> tuple[Path, ClassSchema, ClassSchema, list[tuple[int, int, int]]]:
    """Rows of a ``<source>_id,<target>_id`` table as (line, source id, target id), plus schemas."""
    path, header, rows = _read_table(name, tables_dir_override)
    if len(header) != 2:
        raise TableError(f"{path}: an id map has exactly two columns '<source>_id,<target>_id', got {header}")
    source = _schema_from_column(header[0], path, tables_dir_override)
    target = _schema_from_column(header[1], path, tables_dir_override)
    pairs: list[tuple[int, int, int]] = []
    for line, row in rows:
        s = _parse_int(row[header[0]], path, line, header[0])
        if s not in source.ids:
            raise TableError(
                f"{path}, line {line}: source id {s} is not a class of {source.name!r} {source.ids}"
            )
        pairs.append((line, s, _parse_int(row[header[1]], path, line, header[1])))
    return path, source, target, pairs


def _schema_from_column(column: str, path: Path, tables_dir_override: Path | str | None) -> ClassSchema:
    """The schema an ``<schema>_id`` column refers to."""
    if not column.endswith("_id") or len(column) <= 3:
        raise TableError(f"{path}: column {column!r} must be named '<schema>_id'")
    return load_schema(column[: -len("_id")], tables_dir_override)


def _check_coverage(path: Path, source: ClassSchema, rows: Mapping[int, object]) -> None:
    missing = [i for i in source.ids if i not in rows]
    if missing:
        raise TableError(f"{path}: no row for source ids {missing} of schema {source.name!r}")


def _parse_int(value: str, path: Path, line: int, column: str) -> int:
    try:
        return int(value.strip())
    except ValueError:
        raise TableError(f"{path}, line {line}, column {column!r}: {value!r} is not an integer") from None


def _parse_prob(value: str, path: Path, line: int, column: str) -> float:
    try:
        p = float(value.strip())
    except ValueError:
        raise TableError(
            f"{path}, line {line}, column {column!r}: {value!r} is not a number"
        ) from None
    if not math.isfinite(p) or not 0.0 <= p <= 1.0:
        raise TableError(f"{path}, line {line}, column {column!r}: probability {p} outside [0, 1]")
    return p
