"""What every released-layout reader shares: the download check, reading one file with errors that
name it, the partner-modality grid check and the per-tile rejection tally.

A download is checked twice: :func:`require_files` at DAG-build time (every file the layout's manifest
promises must exist, so a partial download stops the workflow before any job runs), and each raster
again when it is read (a truncated or corrupt file fails naming it).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from rasterio.crs import CRS

from eolabels.data.geotiff import GridSpec, RasterError, check_finite, read_geotiff
from eolabels.data.index import LayerSpec

PIXEL_GRID = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)  # GDAL's transform for rasters without georeference


class ReleasedLayoutError(RasterError):
    """A downloaded dataset does not match its documented release layout; the message names the file."""


def require_files(paths: Iterable[str | os.PathLike[str]], what: str) -> list[Path]:
    """All of ``paths``, or an error naming the first missing one and how many are missing."""
    paths = [Path(p) for p in paths]
    missing = [p for p in paths if not p.exists()]
    if missing:
        raise ReleasedLayoutError(
            f"{what}: {len(missing)} of {len(paths)} expected files missing (incomplete download?); "
            f"first missing: {missing[0]}"
        )
    return paths


def require_dir(path: str | os.PathLike[str], what: str) -> Path:
    """A folder that exists and is not empty."""
    path = Path(path)
    if not path.is_dir():
        raise ReleasedLayoutError(f"{what}: {path}: no such folder")
    if not any(path.iterdir()):
        raise ReleasedLayoutError(f"{what}: {path}: the folder is empty")
    return path


def read_raster(path: Path, bands: int | None = None) -> tuple[np.ndarray, GridSpec]:
    """(bands, H, W) data and grid of one released raster; truncated files and NaN/inf imagery fail
    naming the file, as does a band count other than ``bands``."""
    data, grid, _ = read_geotiff(path)
    if bands is not None and data.shape[0] != bands:
        raise ReleasedLayoutError(f"{path}: has {data.shape[0]} bands, the release layout has {bands}")
    check_finite(data, where=str(path))
    return data, grid


def check_partner(path: Path, grid: GridSpec, ref_path: Path, ref: GridSpec) -> None:
    """A modality's tile must lie on its partner's grid: same shape, same CRS (same transform
    where both are georeferenced)."""
    if (grid.height, grid.width) != (ref.height, ref.width):
        raise ReleasedLayoutError(
            f"{path}: shape {grid.height}x{grid.width} differs from its partner {ref_path} ({ref.height}x{ref.width})"
        )
    if bool(grid.crs) != bool(ref.crs) or (grid.crs and CRS.from_string(grid.crs) != CRS.from_string(ref.crs)):
        raise ReleasedLayoutError(f"{path}: CRS {grid.crs or 'none'} differs from its partner {ref_path} ({ref.crs or 'none'})")
    if grid.crs and not np.allclose(grid.transform, ref.transform, rtol=0, atol=1e-6):
        raise ReleasedLayoutError(f"{path}: transform {grid.transform} differs from its partner {ref_path} ({ref.transform})")


def to_uint16(data: np.ndarray, path: Path) -> np.ndarray:
    """Sentinel-2 digital numbers (stored as uint16 or int16) as uint16; negative DNs are an error."""
    if data.dtype.kind not in "iu":
        raise ReleasedLayoutError(f"{path}: Sentinel-2 digital numbers must be integers, got {data.dtype}")
    if data.size and (data.min() < 0 or data.max() > np.iinfo(np.uint16).max):
        raise ReleasedLayoutError(f"{path}: Sentinel-2 digital numbers outside 0..65535 ({data.min()}..{data.max()})")
    return data.astype(np.uint16)


def pixel_grid(height: int, width: int) -> GridSpec:
    """The grid of a source that stores no georeference (the LMDBs)."""
    return GridSpec(crs="", transform=PIXEL_GRID, height=height, width=width)


@dataclass
class Rejections:
    """Tiles a reader drops where the authors' pipeline drops them, counted by reason for the data
    card (``dataset.json`` extra ``rejected``), with the first few examples of each."""

    counts: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def add(self, reason: str, where: str) -> None:
        self.counts[reason] += 1
        self.examples.setdefault(reason, [])
        if len(self.examples[reason]) < 5:
            self.examples[reason].append(where)

    def total(self) -> int:
        return sum(self.counts.values())

    def to_json(self) -> dict:
        return {"total": self.total(), "by_reason": dict(sorted(self.counts.items())), "examples": self.examples}


def encoded_image(spec: LayerSpec) -> LayerSpec:
    """An image layer stored in the SSL4EO-S12 uint8 encoding (each band clipped to μ ± 2σ and scaled
    to 0..255 by the release), instead of physical values; readers divide it by 255 (spec §5–6)."""
    return replace(spec, dtype="uint8")
