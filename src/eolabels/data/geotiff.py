"""GeoTIFF reading and writing: georeferenced, described, compressed, tiled and written atomically.

Every raster the workflow produces goes through :func:`write_geotiff`, so each one opens in QGIS with
its CRS, transform, band descriptions and nodata, and an interrupted run never leaves a file that
looks complete (the data go to a temporary file in the same directory, renamed into place at the end).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError
from rasterio.transform import Affine
from rasterio.windows import Window

from eolabels.atomic import atomic_path


class RasterError(ValueError):
    """A raster on disk is unreadable or disagrees with what the workflow expects of it."""


@dataclass(frozen=True)
class GridSpec:
    """The georeference shared by every layer of one sample: CRS, affine transform and shape.

    A source without georeference uses ``crs=""`` and the identity transform (GDAL's default for
    such rasters, so files read back equal to their index rows).
    """

    crs: str
    transform: tuple[float, float, float, float, float, float]
    height: int
    width: int

    @property
    def affine(self) -> Affine:
        return Affine(*self.transform)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(left, bottom, right, top) in CRS units."""
        a = self.affine
        left, top = a.c, a.f
        right = left + a.a * self.width
        bottom = top + a.e * self.height
        return (min(left, right), min(bottom, top), max(left, right), max(bottom, top))

    @classmethod
    def from_dataset(cls, ds: rasterio.io.DatasetReader) -> GridSpec:
        return cls(
            crs=ds.crs.to_string() if ds.crs else "",
            transform=tuple(ds.transform)[:6],
            height=ds.height,
            width=ds.width,
        )


def write_geotiff(
    path: str | os.PathLike[str],
    data: np.ndarray,
    grid: GridSpec,
    descriptions: Sequence[str],
    nodata: float | None = None,
    colormap: dict[int, tuple[int, int, int]] | None = None,
    compress: str = "deflate",
    blocksize: int = 256,
) -> Path:
    """Write a (bands, H, W) or (H, W) array as a tiled, compressed GeoTIFF, atomically.

    ``descriptions`` names every band (e.g. ``B1..B12``, ``VV``/``VH``, ``dw_label``) so the file is
    self-describing; a label raster may carry a colour ``colormap`` for QGIS.
    """
    arr = np.asarray(data)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise ValueError(f"{path}: expected (bands, H, W) data, got shape {np.shape(data)}")
    bands, height, width = arr.shape
    if (height, width) != (grid.height, grid.width):
        raise ValueError(f"{path}: data is {height}x{width} but grid is {grid.height}x{grid.width}")
    if len(descriptions) != bands:
        raise ValueError(f"{path}: {bands} bands but {len(descriptions)} descriptions")
    if np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
        raise ValueError(f"{path}: refusing to write non-finite values (NaN/inf) into imagery")
    profile = {
        "driver": "GTiff",
        "height": height,
        "width": width,
        "count": bands,
        "dtype": arr.dtype.name,
        "crs": CRS.from_string(grid.crs) if grid.crs else None,
        "transform": grid.affine,
        "nodata": nodata,
        "compress": compress,
        "interleave": "band",
    }
    # GDAL requires tile sizes that are multiples of 16; tiny rasters stay striped.
    if height >= blocksize and width >= blocksize:
        profile.update(tiled=True, blockxsize=blocksize, blockysize=blocksize)
    if np.issubdtype(arr.dtype, np.floating):
        profile["predictor"] = 3 if compress == "deflate" else 1
    path = Path(path)
    with atomic_path(path) as tmp, warnings.catch_warnings():
        if not grid.crs:  # a bare pixel grid is intended here (source without georeference)
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.write(arr)
            for i, desc in enumerate(descriptions, start=1):
                dst.set_band_description(i, desc)
            if colormap is not None:
                dst.write_colormap(1, colormap)
    return path


def open_raster(path: str | os.PathLike[str]) -> rasterio.io.DatasetReader:
    """Open a raster, turning GDAL's errors into a :class:`RasterError` that names the file."""
    path = Path(path)
    if not path.exists():
        raise RasterError(f"{path}: file does not exist")
    try:
        return rasterio.open(path)
    except RasterioIOError as err:
        raise RasterError(f"{path}: not a readable raster ({err})") from err


def read_geotiff(
    path: str | os.PathLike[str],
    window: Window | None = None,
    bands: Sequence[int] | None = None,
    expect: GridSpec | None = None,
    expect_count: int | None = None,
) -> tuple[np.ndarray, GridSpec, tuple[str, ...]]:
    """Read (bands, H, W) data, its grid and band descriptions, checking it against expectations.

    ``expect`` / ``expect_count`` come from the dataset index: a raster whose CRS, transform, shape or
    band count disagrees with its index row is an error naming the file, never a silent misread.
    Truncated files fail here too, because GDAL cannot decode their blocks.
    """
    with open_raster(path) as ds:
        grid = GridSpec.from_dataset(ds)
        if expect is not None:
            check_grid(path, grid, expect)
        if expect_count is not None and ds.count != expect_count:
            raise RasterError(f"{path}: has {ds.count} bands, dataset.json says {expect_count}")
        indexes = [b + 1 for b in bands] if bands is not None else list(range(1, ds.count + 1))
        try:
            data = ds.read(indexes, window=window)
        except RasterioIOError as err:
            raise RasterError(f"{path}: corrupt or truncated raster data ({err})") from err
        descriptions = tuple(ds.descriptions[i - 1] or f"band_{i}" for i in indexes)
    return data, grid, descriptions


def check_grid(path: str | os.PathLike[str], got: GridSpec, want: GridSpec) -> None:
    """Shape, CRS and transform of a raster against its index row. Called for every tile a reduction
    reads, so the common case is cheap: equal CRS strings need no PROJ parse, and the six transform
    coefficients are compared in Python (|a - b| <= 1e-6; NaN never matches)."""
    if (got.height, got.width) != (want.height, want.width):
        raise RasterError(
            f"{path}: shape {got.height}x{got.width} disagrees with index {want.height}x{want.width}"
        )
    if want.crs and got.crs != want.crs and CRS.from_string(got.crs or "EPSG:4326") != CRS.from_string(want.crs):
        raise RasterError(f"{path}: CRS {got.crs or 'none'} disagrees with index {want.crs}")
    if len(got.transform) != len(want.transform) or not all(
        abs(a - b) <= 1e-6 for a, b in zip(got.transform, want.transform)
    ):
        raise RasterError(f"{path}: transform {got.transform} disagrees with index {want.transform}")


def check_finite(array: np.ndarray, where: str) -> None:
    """Fail fast on NaN/inf imagery, naming the sample, instead of training on garbage."""
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        n_bad = int((~np.isfinite(array)).sum())
        raise RasterError(f"{where}: {n_bad} NaN/inf values in imagery")
