"""SSL4EO-S12 imagery in its per-location, per-season folders with the NoLDO-S12 noisy labels → ``noldo``.

Layout (SSL4EO-S12 as torchgeo's ``SSL4EOS12`` documents it; NoLDO-S12 labels as released, spec §6)::

    <s2c_dir>/{id:07d}/{season folder}/{B1,B2,…,B8A,B9,B10,B11,B12}.tif   L1C digital numbers
    <s1_dir>/{id:07d}/{season folder}/{VV,VH}.tif                          GRD backscatter, dB
    <labels_dir>/{id:07d}/{season folder}/label.tif                        Dynamic World ids 0–8
    <ids_csv>   ids, sub1, sub2, sub3, sub4   (header optional: the authors' image writer reads it
                without one, their label writer with one)

* Bands: S2 L1C 13 bands (uint16 DN, or uint8 in the SSL4EO-S12 uint8 release: then the layer is
  stored as uint8 and means the release's μ ± 2σ encoding, which the pretraining reads as /255);
  10 m bands are 264 × 264 px, 20 m and 60 m bands are resampled onto the 10 m grid (cubic, as the
  authors' LMDB writer upsamples bicubically to 264). S1: VV, VH.
* Seasons: ``sub1``..``sub4`` of the ids CSV name each location's S2 and label season folders, in
  the order spring, summer, autumn, winter.  S1 folders have other (S1 product) names: season k of
  S1 is the S1 folder whose acquisition date (the first ``YYYYMMDD`` in its name) has the same rank
  among the location's S1 folders as ``sub_k`` has among its S2 folders.
* Classes: Dynamic World 0 water, 1 trees, 2 grass, 3 flooded vegetation, 4 crops, 5 shrub and
  scrub, 6 built, 7 bare, 8 snow and ice.

Converted, not indexed in place: a layer of the common layout is one multi-band GeoTIFF, the
release keeps one file per band at three resolutions, so each location-season is read once,
checked (grids of S1, S2 and label agree; label ids in the DW schema; no truncated file) and written
as tiled, compressed GeoTIFFs.  ``max_locations`` imports the first N locations of the ids CSV.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
from rasterio.enums import Resampling
from rasterio.errors import RasterioIOError
from tqdm import tqdm

from eolabels.data.geotiff import GridSpec, check_finite, open_raster
from eolabels.data.kinds import NOLDO, S1_BANDS, S2_BANDS
from eolabels.data.released.checks import (
    ReleasedLayoutError, check_partner, encoded_image, read_raster, require_dir, require_files, to_uint16,
)
from eolabels.data.writer import DatasetWriter
from eolabels.tables import load_schema

TILE = 264
DATE = re.compile(r"(\d{8})")


def read_ids(ids_csv: Path) -> list[tuple[int, tuple[str, str, str, str]]]:
    """(location id, its four season folders) per row of the NoLDO-S12 ids CSV."""
    with open(ids_csv, newline="") as f:
        rows = [r for r in csv.reader(f) if r]
    if rows and rows[0][0].strip().lower() == "ids":
        rows = rows[1:]
    if not rows:
        raise ReleasedLayoutError(f"{ids_csv}: no locations (expected columns ids, sub1..sub4)")
    out = []
    for n, row in enumerate(rows, start=1):
        if len(row) != 5:
            raise ReleasedLayoutError(f"{ids_csv}: row {n} has {len(row)} columns, expected 5 (ids, sub1..sub4)")
        try:
            loc = int(row[0])
        except ValueError:
            raise ReleasedLayoutError(f"{ids_csv}: row {n}: location id {row[0]!r} is not an integer") from None
        out.append((loc, tuple(s.strip() for s in row[1:])))
    return out


def expected_files(settings: dict) -> list[Path]:
    """Every file and folder the ids CSV promises (checked at DAG-build time)."""
    s2c, labels = Path(settings["s2c_dir"]), Path(settings["labels_dir"])
    s1 = Path(settings["s1_dir"]) if settings.get("s1_dir") else None
    files: list[Path] = []
    for loc, subs in _locations(settings):
        for sub in subs:
            files.append(labels / f"{loc:07d}" / sub / "label.tif")
            files.extend(s2c / f"{loc:07d}" / sub / f"{b}.tif" for b in S2_BANDS)
        if s1 is not None:
            files.append(s1 / f"{loc:07d}")
    return files


def inputs(settings: dict) -> list[Path]:
    """The manifest (Snakemake input), after checking the whole download is there."""
    require_dir(settings["s2c_dir"], "local.noldo.s2c_dir")
    require_dir(settings["labels_dir"], "local.noldo.labels_dir")
    require_files(expected_files(settings), "local.noldo (ssl4eo_s12_folders)")
    return [Path(settings["ids_csv"])]


def _locations(settings: dict) -> list[tuple[int, tuple[str, str, str, str]]]:
    ids_csv = require_files([settings["ids_csv"]], "local.noldo.ids_csv")[0]
    locations = read_ids(ids_csv)
    limit = int(settings.get("max_locations") or 0)
    return locations[:limit] if limit else locations


def _date(folder: str, where: Path) -> str:
    m = DATE.search(folder)
    if not m:
        raise ReleasedLayoutError(f"{where / folder}: season folder name has no YYYYMMDD date")
    return m.group(1)


def s1_season_folders(s1_loc: Path, s2_loc: Path, subs: tuple[str, ...]) -> list[Path]:
    """The S1 folder of each season: matched to the S2 season folders by date rank (see module doc)."""
    if not s1_loc.is_dir():
        raise ReleasedLayoutError(f"{s1_loc}: no such folder (location missing from the S1 download)")
    s2_folders = sorted((p.name for p in s2_loc.iterdir() if p.is_dir()), key=lambda n: _date(n, s2_loc))
    s1_folders = sorted((p.name for p in s1_loc.iterdir() if p.is_dir()), key=lambda n: _date(n, s1_loc))
    if len(s1_folders) != len(s2_folders):
        raise ReleasedLayoutError(
            f"{s1_loc}: {len(s1_folders)} S1 season folders, but {s2_loc} has {len(s2_folders)}"
        )
    absent = [sub for sub in subs if sub not in s2_folders]
    if absent:
        raise ReleasedLayoutError(f"{s2_loc / absent[0]}: season folder of the ids CSV missing")
    return [s1_loc / s1_folders[s2_folders.index(sub)] for sub in subs]


def read_bands(folder: Path, bands: tuple[str, ...]) -> tuple[np.ndarray, GridSpec]:
    """(bands, 264, 264) stack of one season folder on the grid of its first 264-px band; every
    band must cover the same footprint in the same CRS."""
    stack, footprints, grid = [], [], None
    for band in bands:
        path = folder / f"{band}.tif"
        with open_raster(path) as ds:
            if ds.count != 1:
                raise ReleasedLayoutError(f"{path}: has {ds.count} bands, one band per file expected")
            try:
                data = ds.read(1, out_shape=(TILE, TILE), resampling=Resampling.cubic)
            except RasterioIOError as err:
                raise ReleasedLayoutError(f"{path}: corrupt or truncated raster data ({err})") from err
            footprints.append((path, ds.crs, tuple(ds.bounds), abs(ds.transform.a)))
            if grid is None and (ds.height, ds.width) == (TILE, TILE):
                grid = GridSpec.from_dataset(ds)
        check_finite(data, where=str(path))
        stack.append(data)
    if grid is None:
        raise ReleasedLayoutError(f"{folder}: no band at the 10 m size {TILE}x{TILE}")
    for path, crs, bounds, pixel in footprints:
        if (crs.to_string() if crs else "") != grid.crs or not np.allclose(bounds, grid.bounds, atol=pixel):
            raise ReleasedLayoutError(f"{path}: footprint {bounds} ({crs}) differs from the 10 m bands' {grid.bounds} ({grid.crs})")
    return np.stack(stack), grid


def import_ssl4eo_folders(settings: dict, root: str | Path) -> Path:
    s2c, labels = Path(settings["s2c_dir"]), Path(settings["labels_dir"])
    s1 = Path(settings["s1_dir"]) if settings.get("s1_dir") else None
    locations = _locations(settings)
    first = read_bands(s2c / f"{locations[0][0]:07d}" / locations[0][1][0], S2_BANDS)[0]
    encoded = first.dtype == np.uint8
    layers = ("s2", "s1", "dw") if s1 is not None else ("s2", "dw")
    meta = NOLDO.meta(
        source="local:ssl4eo_s12_folders", layers=layers,
        description=f"SSL4EO-S12 imagery ({s2c}{', ' + str(s1) if s1 else ''}) with NoLDO-S12 noisy "
        f"Dynamic World labels ({labels}), {len(locations)} locations x 4 seasons",
        extra={"ids_csv": str(settings["ids_csv"]), "uint8_encoded_images": bool(encoded)},
    )
    if encoded:
        meta.layers = {n: encoded_image(s) if s.role == "image" else s for n, s in meta.layers.items()}
    writer, dw_schema = DatasetWriter(root, meta), load_schema("dw")
    for loc, subs in tqdm(locations, desc="ssl4eo-s12", unit="location"):
        name = f"{loc:07d}"
        s1_dirs = s1_season_folders(s1 / name, s2c / name, subs) if s1 is not None else [None] * 4
        for season, (sub, s1_dir) in enumerate(zip(subs, s1_dirs)):
            s2_data, grid = read_bands(s2c / name / sub, S2_BANDS)
            ref = s2c / name / sub / "B2.tif"
            if (s2_data.dtype == np.uint8) != encoded:
                raise ReleasedLayoutError(f"{ref}: dtype {s2_data.dtype} differs from the first location's")
            label_path = labels / name / sub / "label.tif"
            label, label_grid = read_raster(label_path, bands=1)
            check_partner(label_path, label_grid, ref, grid)
            dw_schema.validate_labels(label, ignore_index=255, where=str(label_path))
            layer_data = {"s2": s2_data if encoded else to_uint16(s2_data, ref), "dw": label[0]}
            if s1_dir is not None:
                s1_data, s1_grid = read_bands(s1_dir, S1_BANDS)
                check_partner(s1_dir / "VV.tif", s1_grid, ref, grid)
                if (s1_data.dtype == np.uint8) != encoded:
                    raise ReleasedLayoutError(f"{s1_dir / 'VV.tif'}: dtype {s1_data.dtype}, but the S2 bands are "
                                              f"{'uint8-encoded' if encoded else 'digital numbers'}")
                layer_data["s1"] = s1_data
            writer.add(name, "train", season, grid, layer_data)
    return writer.close()
