"""Lazy access to a dataset directory with xarray and dask, and dask reductions over its tiles.

:func:`open_dataset` gives a notebook the whole dataset as one ``xarray.Dataset`` without reading a
pixel: one variable per layer, dims ``(sample, season, band_<layer>, y, x)`` (the band dimension is
named per layer because layers have different bands), one dask chunk per tile, the samples' split,
CRS and affine transform as coordinates, and the CRS through rioxarray (``ds.rio.crs``) where all
tiles share one. :func:`georeferenced` turns one tile into a rioxarray DataArray with x/y coordinates.

:func:`reduce_tiles` is how the data card and the OSM↔DW filter visit tiles: a per-tile function
folded into a small accumulator in parallel, so memory stays that of a few tiles whatever the count.
It runs on dask's processes scheduler by default, or on a ``dask.distributed`` scheduler when
``config.dask.scheduler`` gives its address (``tcp://host:8786``). Not threads: most of a tile's
CPU time is ``rasterio.open`` setting up its dataset object (CRS, band metadata) while holding the
GIL -- GDAL's own open of the file is a small part of it -- so threads read tiles one at a time
(bench/datasets.py measures both).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import partial
from typing import Any, TypeVar

import dask
import dask.array as da
import dask.bag as db
import dask.local
import dask.multiprocessing
import dask.threaded
import numpy as np
import rasterio
import xarray as xr

from eolabels.data.geotiff import GridSpec, RasterError, check_finite, read_geotiff
from eolabels.data.index import DatasetIndex, IndexError_
from eolabels.data.readers import check_dtype, check_label_ids, damaged
from eolabels.tables import ClassSchema

T = TypeVar("T")
LOCAL_SCHEDULERS = ("threads", "synchronous", "processes")
DEFAULT_SCHEDULER = "processes"
SINGLE_SEASON = "single"  # the season coordinate of a dataset with one acquisition per sample


def read_tile(
    index: DatasetIndex, row_number: int, layer: str, schema: ClassSchema | None = None
) -> np.ndarray:
    """One tile's layer (bands, H, W), checked as every reader checks it: grid and band count against
    the index, NaN-free imagery, label ids in ``schema`` (the layer's nodata allowed)."""
    return read_layers(index, row_number, [layer], {layer: schema} if schema else {})[layer]


def read_layers(
    index: DatasetIndex, row_number: int, layers: Sequence[str], schemas: Mapping[str, ClassSchema]
) -> dict[str, np.ndarray]:
    """:func:`read_tile` of several layers of one row, the row looked up once (per-tile reductions
    call this for every tile, so its Python overhead is what threads cannot share)."""
    row = index.table.iloc[row_number]
    grid = index.grid(row)
    out = {}
    with rasterio.Env():  # one GDAL environment for the tile's files, not one set up per open
        for layer in layers:
            out[layer] = _checked_layer(index, row, grid, layer, schemas.get(layer))
    return out


def _checked_layer(
    index: DatasetIndex, row: Any, grid: GridSpec, layer: str, schema: ClassSchema | None
) -> np.ndarray:
    """One layer of a row read and checked (grid, band count, dtype, finite imagery, label ids)."""
    spec = index.meta.layers[layer]
    path = index.path(row, layer)
    try:  # a damaged file's error says how to rebuild the dataset, as the tile readers' do
        data = read_geotiff(path, expect=grid, expect_count=len(spec.bands))[0]
        check_dtype(path, str(data.dtype), spec.dtype)
        if spec.role == "image":
            check_finite(data, str(path))
    except RasterError as err:
        raise damaged(err, index.root) from err
    if spec.role != "image" and schema is not None:
        check_label_ids(data, schema, spec.nodata, str(path))
    return data


def _fill_value(dtype: np.dtype, nodata: float | None) -> Any:
    if nodata is not None:
        return nodata
    return np.nan if np.issubdtype(dtype, np.floating) else 0


def open_dataset(
    path: str | os.PathLike[str], *, layers: Sequence[str] | None = None, split: str | None = None
) -> xr.Dataset:
    """The dataset under ``path`` (a directory with ``dataset.json`` + ``index.csv``) as a lazy Dataset.

    A sample is a location (id); datasets with seasons get one ``season`` entry per season of
    ``dataset.json`` (a season a location lacks is filled with the layer's nodata, NaN or 0), others
    one entry named ``single``. Tiles of different sizes cannot share ``y``/``x``: pick a ``split``
    whose tiles agree (DW test tiles are 512 px, train 510 px). Nothing is read until computed.
    """
    index = DatasetIndex.open(path)
    table = index.table
    if split is not None:
        table = table[table["split"] == split]
        if table.empty:
            raise IndexError_(f"{index.root}: no samples in split {split!r} (splits {sorted(set(index.table['split']))})")
    names = list(index.meta.layers) if layers is None else list(layers)
    unknown = [n for n in names if n not in index.meta.layers]
    if unknown:
        raise IndexError_(f"{index.root}: no layers {unknown} (has {list(index.meta.layers)})")
    shapes = sorted({(int(h), int(w)) for h, w in zip(table["height"], table["width"])})
    if len(shapes) != 1:
        raise IndexError_(
            f"{index.root}: tiles of sizes {shapes} cannot share y/x; open one split at a time (split=...)"
        )
    height, width = shapes[0]
    seasons = list(index.meta.seasons) if index.meta.seasons else [SINGLE_SEASON]
    samples = list(dict.fromkeys(str(i) for i in table["id"]))
    position = {sample: k for k, sample in enumerate(samples)}
    rows: dict[tuple[int, int], int] = {}
    for number, (sample, season) in zip(table.index, zip(table["id"], table["season"])):
        key = (position[str(sample)], int(season) if index.meta.seasons else 0)
        if key in rows:
            raise IndexError_(f"{index.root}: sample {sample} lists season {seasons[key[1]]} twice")
        rows[key] = int(index.table.index.get_loc(number))
    first = {}
    for (k, _), number in sorted(rows.items()):
        first.setdefault(k, number)
    variables = {}
    for name in names:
        spec = index.meta.layers[name]
        dtype = np.dtype(spec.dtype)
        shape = (len(spec.bands), height, width)
        fill = _fill_value(dtype, spec.nodata)
        blocks = []
        for k in range(len(samples)):
            per_season = []
            for s in range(len(seasons)):
                number = rows.get((k, s))
                if number is None or not index.table.iloc[number][name]:
                    per_season.append(da.full(shape, fill, dtype=dtype))
                else:
                    tile = dask.delayed(read_tile, pure=True)(index, number, name)
                    per_season.append(da.from_delayed(tile, shape=shape, dtype=dtype))
            blocks.append(da.stack(per_season))
        variables[name] = xr.DataArray(
            da.stack(blocks), dims=("sample", "season", f"band_{name}", "y", "x"),
            coords={f"band_{name}": list(spec.bands)}, attrs={"role": spec.role, "schema": spec.schema or "", "nodata": "" if spec.nodata is None else spec.nodata},
        )
    firsts = [index.table.iloc[first[k]] for k in range(len(samples))]
    ds = xr.Dataset(
        variables,
        coords={
            "sample": samples,
            "season": seasons,
            "split": ("sample", [str(r["split"]) for r in firsts]),
            "crs": ("sample", [str(r["crs"]) for r in firsts]),
            "transform": (("sample", "affine"), np.array([index.grid(r).transform for r in firsts], dtype=np.float64)),
        },
        attrs={"name": index.meta.name, "source": index.meta.source, "description": index.meta.description},
    )
    crs = sorted(set(ds["crs"].values.tolist()))
    if len(crs) == 1 and crs[0]:
        import rioxarray  # noqa: F401  (registers the .rio accessor)

        ds = ds.rio.write_crs(crs[0])
    return ds


def georeferenced(ds: xr.Dataset, layer: str, sample: str | int, season: str | int = 0) -> xr.DataArray:
    """One tile of ``layer`` as a rioxarray DataArray (band, y, x) with map coordinates and CRS."""
    import rioxarray  # noqa: F401
    from affine import Affine

    k = ds.indexes["sample"].get_loc(sample) if isinstance(sample, str) else sample
    s = ds.indexes["season"].get_loc(season) if isinstance(season, str) else season
    tile = ds[layer].isel(sample=k, season=s).rename({f"band_{layer}": "band"})
    transform = Affine(*ds["transform"].values[k])
    if transform.b or transform.d:
        raise ValueError(f"sample {ds['sample'].values[k]}: a rotated grid has no x/y coordinate vectors")
    xs = transform.c + transform.a * (np.arange(tile.sizes["x"]) + 0.5)  # pixel centres
    ys = transform.f + transform.e * (np.arange(tile.sizes["y"]) + 0.5)
    tile = tile.drop_vars(["sample", "season", "split", "crs", "transform"], errors="ignore").assign_coords(x=xs, y=ys)
    tile = tile.rio.write_transform(transform)
    crs = str(ds["crs"].values[k])
    return tile.rio.write_crs(crs) if crs else tile


def process_start_method() -> str:
    """How the processes scheduler starts its workers: ``fork`` on Linux, so a worker inherits the
    imported modules instead of importing numpy, pandas, rasterio and dask again (``spawn``, dask's
    default, costs seconds per worker); dask's configured method elsewhere (fork is unsafe on macOS)."""
    if sys.platform.startswith("linux"):
        return "fork"
    return dask.config.get("multiprocessing.context", "spawn")


# The local schedulers' get functions, set as such: a scheduler named by a string makes dask import
# dask.distributed (if installed) to look for a client, a serial import in every rule's process.
_LOCAL_GETS = {"threads": dask.threaded.get, "synchronous": dask.local.get_sync, "processes": dask.multiprocessing.get}


@contextlib.contextmanager
def dask_scheduler(scheduler: str = DEFAULT_SCHEDULER, workers: int | None = None) -> Iterator[None]:
    """Compute on ``scheduler`` inside the block: ``processes`` (default), ``threads`` or
    ``synchronous`` with ``workers`` workers, or the address of a running ``dask.distributed``
    scheduler (``tcp://host:8786``; needs the ``distributed`` package).

    ``processes`` hands a worker one task at a time (``chunksize`` 1). Dask's default batches six
    ready tasks into one submission, so of :func:`reduce_tiles`' eight partitions on two workers one
    worker took six and the other two: 3/4 of the tiles on one core while the other sat idle."""
    if scheduler in LOCAL_SCHEDULERS:
        processes = {"multiprocessing.context": process_start_method(), "chunksize": 1} if scheduler == "processes" else {}
        with dask.config.set({"scheduler": _LOCAL_GETS[scheduler], "num_workers": workers, **processes}):
            yield
        return
    if "://" not in scheduler:
        raise ValueError(
            f"dask scheduler {scheduler!r}: expected one of {LOCAL_SCHEDULERS} or a distributed address such as tcp://host:8786"
        )
    try:
        from distributed import Client
    except ImportError as err:
        raise ImportError(f"dask scheduler {scheduler}: install dask.distributed (pip install distributed)") from err
    with Client(scheduler, set_as_default=False) as client, dask.config.set(scheduler=client.get):
        yield


def reduce_tiles(
    per_tile: Callable[[int], T],
    merge: Callable[[T, T], T],
    n_tiles: int,
    *,
    scheduler: str = DEFAULT_SCHEDULER,
    workers: int | None = None,
) -> T:
    """``merge`` of ``per_tile(i)`` over tiles ``0..n_tiles-1``, folded in parallel partitions.

    Each partition folds its tiles one at a time and partitions are merged pairwise, so at any moment
    a worker holds one tile and one accumulator: memory does not grow with the tile count.
    ``per_tile`` and ``merge`` must be picklable (module-level functions, ``functools.partial``) for
    the processes and distributed schedulers.
    """
    if n_tiles < 1:
        raise ValueError("no tiles to reduce")
    n_workers = workers or os.cpu_count() or 1
    partitions = max(1, min(n_tiles, 4 * n_workers))
    bag = db.range(n_tiles, npartitions=partitions)
    if scheduler not in ("threads", "synchronous"):  # the worker's error travels back pickled
        per_tile = partial(_without_cause, per_tile)
    with dask_scheduler(scheduler, workers):
        return bag.map(per_tile).fold(merge, split_every=8).compute()


def _without_cause(per_tile: Callable[[int], T], number: int) -> T:
    """``per_tile(number)``, its error raised without the chained cause: GDAL's errors (rasterio's
    ``CPLE_*``) cannot be unpickled, and the error readers raise already names the file and says why."""
    try:
        return per_tile(number)
    except Exception as err:
        err.__cause__ = err.__context__ = None
        raise


def tile_rows(per_tile: Callable[[int], dict], n_tiles: int, **scheduler: Any) -> list[dict]:
    """``per_tile(i)`` for every tile, in tile order (each a small row of counts)."""
    return [row for _, row in sorted(reduce_tiles(partial(_indexed, per_tile), _concat, n_tiles, **scheduler))]


def _indexed(per_tile: Callable[[int], dict], number: int) -> list[tuple[int, dict]]:
    return [(number, per_tile(number))]


def _concat(a: list, b: list) -> list:
    return a + b


__all__ = ["DEFAULT_SCHEDULER", "dask_scheduler", "georeferenced", "open_dataset", "read_layers", "read_tile", "reduce_tiles", "tile_rows"]
