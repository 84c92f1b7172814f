"""Reading datasets: lazily as xarray/dask for analysis, and by fast random windows for training.

Both readers go through the index, so every raster is checked against its row (CRS, transform,
shape, band count, a dtype dataset.json's cannot hold) the first time it is opened, imagery is checked for NaN, and label ids are
checked against the layer's class schema.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
import xarray as xr
from rasterio.windows import Window

from eolabels.data.geotiff import GridSpec, RasterError, check_finite, check_grid, open_raster
from eolabels.data.index import DatasetIndex
from eolabels.tables import ClassSchema, load_schema


def open_lazy(index: DatasetIndex, layer: str, row_number: int, chunks: int = 256) -> xr.DataArray:
    """One sample's layer as a dask-backed DataArray (band, y, x) with band names and CRS."""
    import rioxarray  # noqa: F401  (registers the .rio accessor and the rasterio backend)

    row = index.table.iloc[row_number]
    path = index.path(row, layer)
    with open_raster(path) as ds:
        check_grid(path, GridSpec.from_dataset(ds), index.grid(row))
    arr = rioxarray.open_rasterio(path, chunks={"band": -1, "y": chunks, "x": chunks}, masked=False)
    arr = arr.assign_coords(band=list(index.meta.layers[layer].bands))
    arr.name = f"{index.meta.name}/{row['id']}/{layer}"
    return arr


def open_stack(index: DatasetIndex, layer: str, split: str | None = None, chunks: int = 256) -> xr.DataArray:
    """All samples of a split stacked lazily along a ``sample`` dimension (equal shapes required)."""
    rows = [i for i, r in enumerate(index.table.itertuples()) if split is None or r.split == split]
    if not rows:
        raise RasterError(f"{index.root}: no samples in split {split!r}")
    arrays = [open_lazy(index, layer, i, chunks).drop_vars(["x", "y", "spatial_ref"], errors="ignore") for i in rows]
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1:
        raise RasterError(f"{index.root}/{layer}: samples have different shapes {sorted(shapes)}; cannot stack")
    ids = [f"{index.table.iloc[i]['id']}/{index.table.iloc[i]['season']}" for i in rows]
    return xr.concat(arrays, dim="sample").assign_coords(sample=ids)


def check_label_ids(data: np.ndarray, schema: ClassSchema, nodata: float | None, where: str) -> None:
    """:meth:`ClassSchema.validate_labels` of a uint8 raster through its histogram (no sort)."""
    if data.dtype != np.uint8:
        schema.validate_labels(data, ignore_index=nodata, where=where)
        return
    present = np.flatnonzero(np.bincount(data.ravel(), minlength=256))
    schema.validate_labels(present, ignore_index=nodata, where=where)


@dataclass
class WindowReader:
    """Fast random windows for training: open files are cached, each checked once against the index.

    ``read(row, layers, top, left, size)`` returns ``{layer: (bands, size, size) array}``;
    ``random(rng, layers, size)`` picks a sample and an offset uniformly.  Keep one reader per data
    loader worker (rasterio handles are not shared across processes).
    """

    index: DatasetIndex
    max_open: int = 64
    check_labels: bool = True
    _open: OrderedDict = field(default_factory=OrderedDict, init=False, repr=False)
    _schemas: dict[str, ClassSchema] = field(default_factory=dict, init=False, repr=False)
    _records: list[dict] | None = field(default=None, init=False, repr=False)

    def row(self, row_number: int) -> dict:
        """One index row as a dict: taken from the table once per reader, as a pandas row lookup per
        read costs more than reading a small tile's pixels."""
        if self._records is None:
            self._records = self.index.table.to_dict("records")
        return self._records[row_number]

    def _dataset(self, row_number: int, layer: str) -> rasterio.io.DatasetReader:
        key = (row_number, layer)
        if key in self._open:
            self._open.move_to_end(key)
            return self._open[key]
        row = self.row(row_number)
        path = self.index.path(row, layer)
        try:
            ds = open_raster(path)
        except RasterError as err:
            raise self._damaged(err) from err
        try:
            check_grid(path, GridSpec.from_dataset(ds), self.index.grid(row))
            spec = self.index.meta.layers[layer]
            if ds.count != len(spec.bands):
                raise RasterError(f"{path}: has {ds.count} bands, dataset.json says {len(spec.bands)}")
            check_dtype(path, ds.dtypes[0], spec.dtype)
        except RasterError as err:
            ds.close()
            raise self._damaged(err) from err
        self._open[key] = ds
        if len(self._open) > self.max_open:
            _, old = self._open.popitem(last=False)
            old.close()
        return ds

    def _damaged(self, err: RasterError) -> RasterError:
        return damaged(err, self.index.root)

    def read(
        self, row_number: int, layers: Sequence[str], top: int, left: int, size: int | tuple[int, int]
    ) -> dict[str, np.ndarray]:
        h, w = (size, size) if isinstance(size, int) else size
        out: dict[str, np.ndarray] = {}
        for layer in layers:
            ds = self._dataset(row_number, layer)
            if top < 0 or left < 0 or top + h > ds.height or left + w > ds.width:
                raise RasterError(
                    f"{ds.name}: window ({top},{left},{h}x{w}) outside the {ds.height}x{ds.width} raster"
                )
            try:
                data = ds.read(window=Window(left, top, w, h))
            except rasterio.errors.RasterioIOError as err:
                raise self._damaged(RasterError(f"{ds.name}: corrupt or truncated raster data ({err})")) from err
            spec = self.index.meta.layers[layer]
            where = f"{ds.name} window ({top},{left})"
            if spec.role == "image":
                try:
                    check_finite(data, where)
                except RasterError as err:
                    raise self._damaged(err) from err
            elif spec.schema and self.check_labels:
                if spec.schema not in self._schemas:  # not setdefault: it would read the table every call
                    self._schemas[spec.schema] = load_schema(spec.schema)
                check_label_ids(data, self._schemas[spec.schema], spec.nodata, where)
            out[layer] = data
        return out

    def random(
        self, rng: np.random.Generator, layers: Sequence[str], size: int, rows: Sequence[int] | None = None
    ) -> tuple[int, dict[str, np.ndarray]]:
        candidates = np.arange(len(self.index)) if rows is None else np.asarray(rows)
        row_number = int(rng.choice(candidates))
        row = self.row(row_number)
        h, w = int(row["height"]), int(row["width"])
        if size > min(h, w):
            raise RasterError(f"{self.index.root}: crop {size} larger than sample {row['id']} ({h}x{w})")
        top, left = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
        return row_number, self.read(row_number, layers, top, left, size)

    def close(self) -> None:
        for ds in self._open.values():
            ds.close()
        self._open.clear()

    def __enter__(self) -> WindowReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def damaged(err: RasterError, root: str | Path) -> RasterError:
    """``err`` with how to rebuild the dataset under ``root``: tiles are no rule's inputs, so neither
    ``-n`` nor ``--summary`` sees them damaged or gone."""
    return RasterError(
        f"{err}\n(a damaged or deleted dataset file: regenerate the dataset with "
        f"`snakemake --forcerun {Path(root) / 'index.csv'}`)"
    )


def check_dtype(path: str | Path, stored: str, declared: str) -> None:
    """A raster whose values do not fit the dtype ``dataset.json`` declares fails naming the file."""
    if not np.can_cast(stored, declared, "safe"):
        raise RasterError(f"{path}: holds {stored} values, dataset.json says {declared}")


@dataclass
class TileReader:
    """Whole tiles through the index, the one in-memory reader of every stage.

    ``read(row, layers)`` returns one sample's full rasters ``{layer: (bands, H, W)}``; ``stack(layers,
    split)`` every sample of a split stacked (equal sizes required); ``read_location(location, layers)``
    all seasons of one location ``{layer: (seasons, bands, H, W)}`` in season order, as multi-season
    pretraining needs (NoLDO-S12 layout). Each raster is checked against its index row and labels
    against their schema (:class:`WindowReader`). Locations are grouped on first use: a location
    listing a season twice, or (with ``require_all_seasons``) missing one of ``dataset.json``'s
    seasons, fails with the location named.
    """

    index: DatasetIndex
    require_all_seasons: bool = True
    windows: WindowReader = field(init=False, repr=False)
    _locations: dict[str, list[int]] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.windows = WindowReader(self.index)

    def rows(self, split: str | None = None) -> list[int]:
        """Row numbers of ``split`` (every row when None); an empty split is an error."""
        rows = [i for i, s in enumerate(self.index.table["split"]) if split is None or s == split]
        if not rows:
            raise RasterError(f"{self.index.root}: no samples in split {split!r}")
        return rows

    def size(self, row_number: int) -> tuple[int, int]:
        row = self.windows.row(row_number)
        return int(row["height"]), int(row["width"])

    def read(self, row_number: int, layers: Sequence[str]) -> dict[str, np.ndarray]:
        return self.windows.read(row_number, layers, 0, 0, self.size(row_number))

    def stack(self, layers: Sequence[str], split: str | None = None) -> tuple[list[int], dict[str, np.ndarray]]:
        """Rows of ``split`` and their layers stacked ``(N, bands, H, W)``; tiles of different sizes fail."""
        rows = self.rows(split)
        shapes = {self.size(i) for i in rows}
        if len(shapes) != 1:
            raise RasterError(f"{self.index.root}: tiles of different sizes {sorted(shapes)}; cannot stack")
        per_tile = [self.read(i, layers) for i in rows]
        return rows, {layer: np.stack([t[layer] for t in per_tile]) for layer in layers}

    @property
    def locations(self) -> list[str]:
        return list(self._location_rows())

    def _location_rows(self) -> dict[str, list[int]]:
        if self._locations is not None:
            return self._locations
        table = self.index.table
        grouped: dict[str, list[int]] = {}
        for number, sample in enumerate(table["id"]):
            grouped.setdefault(str(sample), []).append(number)
        n_seasons = len(self.index.meta.seasons) or 1
        for sample, numbers in grouped.items():
            seasons = sorted(int(table.iloc[n]["season"]) for n in numbers)
            if len(set(seasons)) != len(seasons):
                raise RasterError(f"{self.index.root}: location {sample} lists season(s) twice: {seasons}")
            if self.require_all_seasons and seasons != list(range(n_seasons)):
                missing = sorted(set(range(n_seasons)) - set(seasons))
                names = [self.index.meta.seasons[s] if s < n_seasons else str(s) for s in missing]
                raise RasterError(f"{self.index.root}: location {sample} is missing season(s) {names}")
            grouped[sample] = sorted(numbers, key=lambda n: int(table.iloc[n]["season"]))
        self._locations = grouped
        return grouped

    def read_location(self, location: str, layers: Sequence[str]) -> dict[str, np.ndarray]:
        rows = self._location_rows()
        if location not in rows:
            raise RasterError(f"{self.index.root}: no location {location!r}")
        numbers = rows[location]
        shapes = {self.size(n) for n in numbers}
        if len(shapes) != 1:
            raise RasterError(f"{self.index.root}: location {location} changes shape across seasons: {sorted(shapes)}")
        per_season = [self.read(n, layers) for n in numbers]
        return {layer: np.stack([s[layer] for s in per_season]) for layer in layers}

    def close(self) -> None:
        self.windows.close()

    def __enter__(self) -> TileReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
