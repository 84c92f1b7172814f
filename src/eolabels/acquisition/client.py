"""Sending Earth Engine requests: rate limit, retries, error classification, response checks.

The real ``ee.data.computeValue`` / ``ee.data.computePixels`` do the work; this module decides, from
the HTTP status the seam saw (:func:`.transport.last_status`), whether a failure is transient (429,
5xx, timeout: back off and retry) or belongs to the location (any other 4xx: give up with the
server's message), and checks that a GeoTIFF came back on exactly the requested grid and dtype.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from typing import Any

import ee
import numpy as np
from rasterio.crs import CRS
from rasterio.errors import RasterioIOError
from rasterio.io import MemoryFile

from eolabels.acquisition.earthengine import pixels_request
from eolabels.acquisition.grids import REQUEST_BYTES_LIMIT, row_strips
from eolabels.acquisition.pool import Backoff, LocationFailed, RateLimiter, Transient, with_retries
from eolabels.acquisition.transport import last_status, reset_status
from eolabels.data.geotiff import GridSpec


class ResponseError(LocationFailed):
    """A response that is not the requested raster (shape, CRS, transform, dtype, band count)."""


def classify(err: Exception, where: str) -> Exception:
    """Turn a client exception into :class:`Transient` (retry) or :class:`LocationFailed` (give up)."""
    if isinstance(err, (TimeoutError, ConnectionError)):
        return Transient(f"{where}: {type(err).__name__}: {err}")
    status = last_status()
    if isinstance(err, ee.EEException) and status is not None:
        if status == 429 or status >= 500:
            return Transient(f"{where}: HTTP {status}: {err}")
        return LocationFailed(f"{where}: HTTP {status}: {err}")
    return LocationFailed(f"{where}: {type(err).__name__}: {err}")


def decode_geotiff(content: bytes, grid: GridSpec, bands: int, dtype: str, where: str) -> np.ndarray:
    """The (bands, H, W) pixels of a GeoTIFF response, checked against the requested grid."""
    try:
        with MemoryFile(content) as mem, mem.open() as ds:
            problems = []
            if (ds.height, ds.width) != (grid.height, grid.width):
                problems.append(f"shape {ds.height}x{ds.width}, asked {grid.height}x{grid.width}")
            if ds.count != bands:
                problems.append(f"{ds.count} bands, asked {bands}")
            if ds.crs is None or CRS.from_user_input(ds.crs) != CRS.from_string(grid.crs):
                problems.append(f"CRS {ds.crs}, asked {grid.crs}")
            if not np.allclose(tuple(ds.transform)[:6], grid.transform, rtol=0, atol=1e-6):
                problems.append(f"transform {tuple(ds.transform)[:6]}, asked {grid.transform}")
            if any(d != dtype for d in ds.dtypes):
                problems.append(f"dtype {ds.dtypes[0]}, asked {dtype}")
            if problems:
                raise ResponseError(f"{where}: response is not the requested raster: " + "; ".join(problems))
            return ds.read()
    except RasterioIOError as err:
        head = content[:80].decode("utf-8", "replace")
        raise ResponseError(f"{where}: response is not a GeoTIFF ({err}); starts {head!r}") from None


@dataclass
class EarthEngineClient:
    """Rate-limited, retrying access to the two compute endpoints, shared by a shard's workers."""

    limiter: RateLimiter
    backoff: Backoff
    bytes_limit: int = REQUEST_BYTES_LIMIT
    seed: int = 0

    def __post_init__(self) -> None:
        self._rng_lock = threading.Lock()
        self._rng = random.Random(self.seed)

    def _rng_for_call(self) -> random.Random:
        with self._rng_lock:
            return random.Random(self._rng.random())

    def _call(self, fn: Any, arg: Any, where: str) -> Any:
        def attempt() -> Any:
            reset_status()
            try:
                return fn(arg)
            except Exception as err:  # noqa: BLE001 - classified, never swallowed
                raise classify(err, where) from err
        return with_retries(attempt, self.backoff, where, self.limiter, self._rng_for_call())

    def value(self, expression: ee.ComputedObject, where: str) -> Any:
        """``ee.data.computeValue`` of ``expression``."""
        return self._call(ee.data.computeValue, expression, where)

    def pixels(self, expression: ee.Image, grid: GridSpec, bands: int, dtype: str, where: str) -> np.ndarray:
        """``ee.data.computePixels`` on ``grid``, in row strips under the request size limit."""
        strips = row_strips(grid, bands * np.dtype(dtype).itemsize, self.bytes_limit)
        out = np.empty((bands, grid.height, grid.width), dtype=dtype)
        for first, strip in strips:
            part = f"{where} rows {first}-{first + strip.height}" if len(strips) > 1 else where
            content = self._call(ee.data.computePixels, pixels_request(expression, strip), part)
            out[:, first:first + strip.height] = decode_geotiff(content, strip, bands, dtype, part)
        return out
