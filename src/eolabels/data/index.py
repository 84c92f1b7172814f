"""The dataset directory contract: ``dataset.json`` (what the layers are) + ``index.csv`` (samples).

Every dataset the workflow reads or writes, synthetic or real, looks like::

    <dataset>/
      dataset.json   name, source, layers {name: {bands, dtype, role, schema, nodata, modality}},
                     seasons
      index.csv      one row per sample: id, split, season, crs, transform, height, width,
                     left, bottom, right, top, and one column per layer holding a relative path
      samples/...    the GeoTIFFs the paths point to

Readers check each raster against its row (CRS, transform, shape, band count), so a file that drifted
from its index fails with a message naming it rather than being misread.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from eolabels.atomic import atomic_path
from eolabels.data.geotiff import GridSpec

INDEX_FILE = "index.csv"
META_FILE = "dataset.json"
# Version of dataset.json's shape, recorded in every file and a param of the acquire rules: a bump
# re-runs them, and a directory of another version fails to open instead of being misread.
# 2: layer roles coarse_label / displacement, image modalities.
LAYOUT_VERSION = 2
BASE_COLUMNS = (
    "id", "split", "season", "crs", "transform", "height", "width", "left", "bottom", "right", "top",
)


class IndexError_(ValueError):
    """An index or dataset description is missing, empty or inconsistent."""


ROLES = ("image", "label", "coarse_label", "truth", "displacement")


@dataclass(frozen=True)
class LayerSpec:
    """One raster layer of a dataset: its bands and what it is for.

    ``role`` is what a consumer asks for (:meth:`DatasetMeta.layer`): ``image`` (model input, of a
    ``modality``: ``s2``, ``s1`` or ``aerial``), ``label`` (a high-resolution training / evaluation
    target, noisy or clean: uint8 class ids of ``schema`` with 255 unlabelled), ``coarse_label``
    (low-resolution labels such as NLCD or MODIS, upsampled onto the grid), ``truth`` (hidden truth of
    the synthetic world, evaluation only) or ``displacement`` (a label layer's true misregistration,
    dy/dx in pixels, evaluation only).
    """

    bands: tuple[str, ...]
    dtype: str
    role: str
    schema: str | None = None
    nodata: float | None = None
    modality: str | None = None

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise IndexError_(f"layer role must be one of {'/'.join(ROLES)}, got {self.role!r}")
        if (self.role == "image") != (self.modality is not None):
            raise IndexError_(
                f"a layer has a modality if and only if it is an image (role {self.role!r}, modality {self.modality!r})"
            )


def find_layer(
    layers: Mapping[str, LayerSpec], owner: str, role: str, *, modality: str | None = None, schema: str | None = None
) -> str:
    """The name of the one layer of ``layers`` that matches; ``owner`` names them in the error."""
    matches = [
        name for name, spec in layers.items()
        if spec.role == role
        and (modality is None or spec.modality == modality)
        and (schema is None or spec.schema == schema)
    ]
    if len(matches) != 1:
        wanted = role + (f", modality {modality}" if modality else "") + (f", schema {schema}" if schema else "")
        found = "none" if not matches else f"several: {matches}"
        roles = {name: spec.role for name, spec in layers.items()}
        raise IndexError_(f"{owner}: want one layer ({wanted}), found {found}; layers {roles}")
    return matches[0]


@dataclass
class DatasetMeta:
    """Contents of ``dataset.json``."""

    name: str
    source: str
    layers: dict[str, LayerSpec]
    seasons: tuple[str, ...] = ()
    description: str = ""
    extra: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        d = asdict(self)
        d["layers"] = {k: asdict(v) for k, v in self.layers.items()}
        return {"layout_version": LAYOUT_VERSION, **d}

    @classmethod
    def from_json(cls, d: dict) -> DatasetMeta:
        version = d.get("layout_version", 1)
        if version != LAYOUT_VERSION:
            raise IndexError_(
                f"layout version {version}, this eolabels reads version {LAYOUT_VERSION}: write the dataset "
                "again (in the workflow: snakemake --forcerun acquire_synthetic, or acquire_local)"
            )
        layers = {k: LayerSpec(**{**v, "bands": tuple(v["bands"])}) for k, v in d["layers"].items()}
        return cls(
            name=d["name"],
            source=d["source"],
            layers=layers,
            seasons=tuple(d.get("seasons", ())),
            description=d.get("description", ""),
            extra=d.get("extra", {}),
        )

    def layer(self, role: str, *, modality: str | None = None, schema: str | None = None) -> str:
        """The one layer with ``role`` (and ``modality`` / ``schema`` where given), by name.

        Consumers ask by role rather than by name, so a stage reads any dataset that declares the
        roles it needs; none or several matches are an error naming the candidates.
        """
        return find_layer(self.layers, f"dataset {self.name!r}", role, modality=modality, schema=schema)

    def has_layer(self, role: str, *, modality: str | None = None, schema: str | None = None) -> bool:
        """Whether :meth:`layer` finds exactly one layer for this query."""
        try:
            self.layer(role, modality=modality, schema=schema)
        except IndexError_:
            return False
        return True


def grid_columns(grid: GridSpec) -> dict[str, object]:
    """The index columns that pin a sample's georeference."""
    left, bottom, right, top = grid.bounds
    return {
        "crs": grid.crs,
        "transform": ",".join(repr(float(v)) for v in grid.transform),
        "height": grid.height,
        "width": grid.width,
        "left": left,
        "bottom": bottom,
        "right": right,
        "top": top,
    }


@dataclass
class DatasetIndex:
    """A dataset directory opened for reading: metadata, the sample table and path helpers."""

    root: Path
    meta: DatasetMeta
    table: pd.DataFrame

    @classmethod
    def open(cls, root: str | os.PathLike[str]) -> DatasetIndex:
        root = Path(root)
        meta_path, index_path = root / META_FILE, root / INDEX_FILE
        for p in (meta_path, index_path):
            if not p.is_file():
                raise IndexError_(f"{p}: missing (is {root} a dataset directory?)")
        try:
            meta = DatasetMeta.from_json(json.loads(meta_path.read_text()))
        except (json.JSONDecodeError, KeyError, TypeError, IndexError_) as err:
            raise IndexError_(f"{meta_path}: malformed dataset description ({err})") from err
        try:
            table = pd.read_csv(index_path, dtype={"id": str, "split": str, "crs": str}, keep_default_na=False)
        except pd.errors.EmptyDataError as err:
            raise IndexError_(f"{index_path}: empty index") from err
        if table.empty:
            raise IndexError_(f"{index_path}: index has no samples")
        missing = [c for c in (*BASE_COLUMNS, *meta.layers) if c not in table.columns]
        if missing:
            raise IndexError_(f"{index_path}: missing columns {missing}")
        return cls(root=root, meta=meta, table=table)

    def __len__(self) -> int:
        return len(self.table)

    def rows(self, split: str | None = None, season: int | None = None) -> Iterator[pd.Series]:
        t = self.table
        if split is not None:
            t = t[t["split"] == split]
        if season is not None:
            t = t[t["season"] == season]
        for _, row in t.iterrows():
            yield row

    def grid(self, row: pd.Series) -> GridSpec:
        transform = tuple(float(v) for v in str(row["transform"]).split(","))
        if len(transform) != 6:
            raise IndexError_(f"{self.root / INDEX_FILE}: sample {row['id']}: bad transform {row['transform']!r}")
        return GridSpec(crs=row["crs"], transform=transform, height=int(row["height"]), width=int(row["width"]))

    def path(self, row: pd.Series, layer: str) -> Path:
        if layer not in self.meta.layers:
            raise IndexError_(f"{self.root}: no layer {layer!r} (has {sorted(self.meta.layers)})")
        rel = row[layer]
        if not rel:
            raise IndexError_(f"{self.root}: sample {row['id']} season {row['season']} has no {layer!r} layer")
        return self.root / rel


def write_index(
    root: str | os.PathLike[str], meta: DatasetMeta, rows: Sequence[dict[str, object]]
) -> Path:
    """Write ``dataset.json`` and ``index.csv`` atomically; refuses an empty index."""
    root = Path(root)
    if not rows:
        raise IndexError_(f"{root}: refusing to write an empty index")
    columns = [*BASE_COLUMNS, *meta.layers]
    table = pd.DataFrame(list(rows))
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise IndexError_(f"{root}: index rows lack columns {missing}")
    extra = [c for c in table.columns if c not in columns]
    with atomic_path(root / META_FILE) as tmp:
        tmp.write_text(json.dumps(meta.to_json(), indent=2))
    with atomic_path(root / INDEX_FILE) as tmp:
        table[columns + extra].to_csv(tmp, index=False)
    return root / INDEX_FILE
