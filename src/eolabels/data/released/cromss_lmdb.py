"""The CromSS LMDBs as released by the authors → ``noldo``, ``dw``, ``osm`` and ``dfc2020`` (spec §6).

Each value is a pickled tuple ``(bytes, shape[, id])``; the array's dtype is fixed by its key:

``ssl4eo_s12_nol`` (format ``cromss_nol_lmdb``; pretraining, three LMDBs of one location per key)
    key ``str(i)``, i = 0..N−1 → ``(bytes, shape, id)``; labels uint8 (4, 264, 264) Dynamic World ids
    0–8; S1 uint8 (4, 2, 264, 264); S2 uint8 (4, 13, 264, 264) in the SSL4EO-S12 uint8 encoding
    (μ ± 2σ → 0..255, read as /255).  The id (the SSL4EO-S12 location) agrees across the three.
``dw_{train,test}_lmdb``, ``osm_{train,test}_lmdb`` (format ``cromss_dwosm_lmdb``)
    keys ``s1_{i}`` float32 (2, H, W) dB, ``s2_{i}`` uint16 (13, H, W) L1C DN, ``dw_{i}`` uint8 expert
    ids 0–10 (0 unlabelled, 10 cloud), ``osm_{i}`` uint8 legend ids 0–13 (0 unlabelled; OSM LMDBs
    only) → ``(bytes, shape, fid)``; i = 0..entries/3−1 (entries/4 when the folder name contains
    "osm").  The fids are ``s1_X``, ``s2_X``, ``dw_X`` / ``osm_X`` for one tile X.  Labels are
    recoded as the authors' loader does (DW 10, 0 → 255, k → k−1; OSM 0 → 255, k → k−1).
``DFC2020_s12_{validation,test}.lmdb`` (format ``cromss_dfc2020_lmdb``)
    keys ``s1_{i}`` float64 (2, 256, 256) dB, ``s2_{i}`` uint16 (13, 256, 256), ``lbl_{i}`` uint8 already
    in DW-like ids (DFC2020 recoded at write time) → ``(bytes, shape)``.  Ids 0–7 are the 8 DFC2020
    classes of ``config/tables/dfc2020.csv``; id 8 (savanna, snow/ice, anything unmapped) has no
    class among the 8 and becomes 255, counted in ``dataset.json`` (the paper's splits hold none).
    The LMDBs carry no MODIS layer, so this ``dfc2020`` has none (the LSR stage needs the GeoTIFFs).

The LMDBs store no georeference: samples are written on a bare pixel grid.  Converted (not read in
place) because every stage reads the common GeoTIFF layout; the pickles are read with an unpickler
that refuses any class, so a tampered file cannot run code.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from tqdm import tqdm

from eolabels.cromss.remap import remap_dw_expert, remap_osm
from eolabels.data.kinds import DFC2020, DW, NOLDO, OSM
from eolabels.data.released.checks import (
    ReleasedLayoutError, Rejections, encoded_image, pixel_grid, require_files,
)
from eolabels.data.writer import DatasetWriter
from eolabels.tables import load_schema

DFC2020_OTHER = 8  # the DW-like id the authors' writer gives every DFC2020 id without a class


class _PlainUnpickler(pickle.Unpickler):
    """Tuples, bytes, ints and strings only: the LMDB values need nothing else."""

    def find_class(self, module: str, name: str):  # noqa: ANN201
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def lmdb_data_file(path: str | Path) -> Path:
    """The file holding an LMDB: ``data.mdb`` inside its folder, or the file itself."""
    path = Path(path)
    return path if path.is_file() else path / "data.mdb"


class LmdbReader:
    """Read-only access to one released LMDB; every error names the LMDB and the key."""

    def __init__(self, path: str | Path) -> None:
        import lmdb

        self.path = Path(path)
        require_files([lmdb_data_file(self.path)], f"LMDB {self.path}")
        try:
            self.env = lmdb.open(str(self.path), readonly=True, lock=False, readahead=False,
                                 subdir=self.path.is_dir(), max_readers=8)
        except lmdb.Error as err:
            raise ReleasedLayoutError(f"{self.path}: not a readable LMDB ({err})") from err
        with self.env.begin() as txn:
            self.entries = int(txn.stat()["entries"])

    def close(self) -> None:
        self.env.close()

    def record(self, key: str, dtype: type, ndim: tuple[int, ...], fields: int) -> tuple[np.ndarray, object]:
        """The array stored under ``key`` (and its id when the tuple has three fields)."""
        with self.env.begin() as txn:
            value = txn.get(key.encode())
        where = f"{self.path} key {key!r}"
        if value is None:
            raise ReleasedLayoutError(f"{where}: key missing ({self.entries} entries)")
        try:
            obj = _PlainUnpickler(io.BytesIO(value)).load()
        except Exception as err:  # noqa: BLE001 - any unpickling failure is a corrupt value
            raise ReleasedLayoutError(f"{where}: value is not a pickled tuple ({err})") from err
        if not isinstance(obj, tuple) or len(obj) != fields or not isinstance(obj[0], bytes):
            raise ReleasedLayoutError(f"{where}: expected a tuple of {fields} (bytes, shape{', id' if fields == 3 else ''})")
        shape = tuple(int(s) for s in obj[1])
        if len(shape) not in ndim:
            raise ReleasedLayoutError(f"{where}: shape {shape} has {len(shape)} dimensions, expected {' or '.join(map(str, ndim))}")
        n = int(np.prod(shape)) * np.dtype(dtype).itemsize
        if len(obj[0]) != n:
            raise ReleasedLayoutError(f"{where}: {len(obj[0])} bytes do not hold a {np.dtype(dtype).name} array of shape {shape}")
        return np.frombuffer(obj[0], dtype=dtype).reshape(shape), (obj[2] if fields == 3 else None)


@contextmanager
def opened(path: str | Path) -> Iterator[LmdbReader]:
    reader = LmdbReader(path)
    try:
        yield reader
    finally:
        reader.close()


def _expect_shape(array: np.ndarray, shape: tuple[int, ...], where: str) -> None:
    if array.shape != shape:
        raise ReleasedLayoutError(f"{where}: shape {array.shape}, expected {shape}")


# ---- ssl4eo_s12_nol (pretraining) -------------------------------------------------------------

def nol_inputs(settings: dict) -> list[Path]:
    keys = ["labels_lmdb", "s2_lmdb"] + (["s1_lmdb"] if settings.get("s1_lmdb") else [])
    return require_files([lmdb_data_file(settings[k]) for k in keys], "local.noldo (cromss_nol_lmdb)")


def import_nol(settings: dict, root: str | Path) -> Path:
    with_s1 = bool(settings.get("s1_lmdb"))
    layers = ("s2", "s1", "dw") if with_s1 else ("s2", "dw")
    meta = NOLDO.meta(
        source="local:cromss_nol_lmdb", layers=layers,
        description="SSL4EO-S12@NoL pretraining LMDBs of CromSS (uint8-encoded images, noisy Dynamic "
        f"World labels, 4 seasons), from {settings['labels_lmdb']}; no georeference (pixel grid)",
        extra={"georeferenced": False, "uint8_encoded_images": True},
    )
    meta.layers = {n: encoded_image(s) if s.role == "image" else s for n, s in meta.layers.items()}
    writer, dw_schema = DatasetWriter(root, meta), load_schema("dw")
    with opened(settings["labels_lmdb"]) as lab, opened(settings["s2_lmdb"]) as s2db:
        s1db = LmdbReader(settings["s1_lmdb"]) if with_s1 else None
        try:
            limit = int(settings.get("max_locations") or 0) or lab.entries
            for i in tqdm(range(min(limit, lab.entries)), desc="ssl4eo_s12_nol", unit="location"):
                key = str(i)
                labels, loc = lab.record(key, np.uint8, (3,), 3)
                where = f"{lab.path} key {key!r}"
                if labels.shape[0] != 4:
                    raise ReleasedLayoutError(f"{where}: {labels.shape[0]} seasons, expected 4 (shape {labels.shape})")
                dw_schema.validate_labels(labels, ignore_index=None, where=where)
                h, w = labels.shape[1:]
                images = {}
                for name, db, bands in (("s2", s2db, 13), ("s1", s1db, 2)):
                    if db is None:
                        continue
                    img, img_id = db.record(key, np.uint8, (4,), 3)
                    _expect_shape(img, (4, bands, h, w), f"{db.path} key {key!r}")
                    if img_id != loc:
                        raise ReleasedLayoutError(f"{db.path} key {key!r}: id {img_id!r} differs from the label's {loc!r} ({where})")
                    images[name] = img
                for season in range(4):
                    writer.add(f"{int(loc):07d}", "train", season, pixel_grid(h, w),
                               {**{n: a[season] for n, a in images.items()}, "dw": labels[season]})
        finally:
            if s1db is not None:
                s1db.close()
    return writer.close()


# ---- SSL4EO-S12@DW / @OSM ----------------------------------------------------------------------

def dwosm_inputs(settings: dict, dataset: str) -> list[Path]:
    return require_files([lmdb_data_file(settings[k]) for k in ("train_lmdb", "test_lmdb")],
                         f"local.{dataset} (cromss_dwosm_lmdb)")


def _tile_count(db: LmdbReader, osm: bool) -> int:
    per = 4 if osm else 3
    if db.entries % per:
        raise ReleasedLayoutError(f"{db.path}: {db.entries} entries is not a multiple of {per} (s1, s2, dw{', osm' if osm else ''} per tile)")
    return db.entries // per


def import_dwosm(settings: dict, root: str | Path, dataset: str) -> Path:
    osm = dataset == "osm"
    kind = OSM if osm else DW
    layers = ("s2", "s1", "osm", "dw") if osm else ("s2", "s1", "dw")
    meta = kind.meta(
        source="local:cromss_dwosm_lmdb", layers=layers,
        description=f"SSL4EO-S12@{'OSM' if osm else 'DW'} LMDBs of CromSS ({settings['train_lmdb']}, "
        f"{settings['test_lmdb']}); labels recoded as the authors' loader does; no georeference (pixel grid)",
        extra={"georeferenced": False},
    )
    writer = DatasetWriter(root, meta)
    for split in ("train", "test"):
        with opened(settings[f"{split}_lmdb"]) as db:
            with_osm = "osm" in db.path.name  # the authors' loader counts entries per tile from the name
            if osm and not with_osm:
                raise ReleasedLayoutError(f"{db.path}: dataset 'osm' needs an osm_{split}_lmdb (the name says it holds OSM labels)")
            for i in tqdm(range(_tile_count(db, with_osm)), desc=f"{dataset} {split}", unit="tile"):
                dw_raw, dw_fid = db.record(f"dw_{i}", np.uint8, (2, 3), 3)
                dw_raw = dw_raw[-1] if dw_raw.ndim == 3 else dw_raw
                label_fid = str(dw_fid)[3:]
                layer_data = {"dw": remap_dw_expert(dw_raw).astype(np.uint8)}
                if osm:
                    osm_raw, osm_fid = db.record(f"osm_{i}", np.uint8, (2, 3), 3)
                    osm_raw = osm_raw[-1] if osm_raw.ndim == 3 else osm_raw
                    label_fid = str(osm_fid)[4:]
                    _expect_shape(osm_raw, dw_raw.shape, f"{db.path} key 'osm_{i}'")
                    layer_data["osm"] = remap_osm(osm_raw).astype(np.uint8)
                h, w = dw_raw.shape
                for s, dtype, bands in (("s1", np.float32, 2), ("s2", np.uint16, 13)):
                    img, fid = db.record(f"{s}_{i}", dtype, (3,), 3)
                    _expect_shape(img, (bands, h, w), f"{db.path} key '{s}_{i}'")
                    if str(fid)[3:] != label_fid:
                        raise ReleasedLayoutError(f"{db.path} key '{s}_{i}': fid {fid!r} is not the tile of its label ({label_fid!r})")
                    layer_data[s] = img
                writer.add(label_fid.replace("/", "_"), split, 0, pixel_grid(h, w), layer_data)
    return writer.close()


# ---- DFC2020 ------------------------------------------------------------------------------------

def dfc2020_inputs(settings: dict) -> list[Path]:
    return require_files([lmdb_data_file(settings[k]) for k in ("validation_lmdb", "test_lmdb")],
                         "local.dfc2020 (cromss_dfc2020_lmdb)")


def dw_like_to_dfc2020(labels: np.ndarray, where: str, rejected: Rejections) -> np.ndarray:
    """DW-like ids of the authors' DFC2020 LMDBs → the 8 DFC2020 classes; 8 → 255 (counted)."""
    bad = labels > DFC2020_OTHER
    if bad.any():
        raise ReleasedLayoutError(f"{where}: label id {int(labels[bad][0])} is outside the DW-like ids 0..8")
    out = labels.astype(np.uint8).copy()
    other = out == DFC2020_OTHER
    if other.any():
        rejected.add("pixels of id 8 (no DFC2020 class) set to unlabelled", where)
        out[other] = 255
    return out


def import_dfc2020_lmdb(settings: dict, root: str | Path) -> Path:
    rejected = Rejections()
    meta = DFC2020.meta(
        source="local:cromss_dfc2020_lmdb", layers=("s2", "s1", "dfc"),
        description=f"DFC2020 LMDBs of CromSS ({settings['validation_lmdb']}, {settings['test_lmdb']}): "
        "S1/S2 with DFC2020 labels in DW-like ids; no MODIS layer; no georeference (pixel grid)",
        extra={"georeferenced": False},
    )
    writer = DatasetWriter(root, meta)
    for split in ("validation", "test"):
        with opened(settings[f"{split}_lmdb"]) as db:
            if db.entries % 3:
                raise ReleasedLayoutError(f"{db.path}: {db.entries} entries is not a multiple of 3 (s1, s2, lbl per patch)")
            for i in tqdm(range(db.entries // 3), desc=f"dfc2020 {split}", unit="patch"):
                lbl, _ = db.record(f"lbl_{i}", np.uint8, (2,), 2)
                h, w = lbl.shape
                layer_data = {"dfc": dw_like_to_dfc2020(lbl, f"{db.path} key 'lbl_{i}'", rejected)}
                for s, dtype, bands in (("s1", np.float64, 2), ("s2", np.uint16, 13)):
                    img, _ = db.record(f"{s}_{i}", dtype, (3,), 2)
                    _expect_shape(img, (bands, h, w), f"{db.path} key '{s}_{i}'")
                    layer_data[s] = img
                writer.add(f"{split}_p{i}", split, 0, pixel_grid(h, w), layer_data)
    writer.meta.extra["rejected"] = rejected.to_json()
    return writer.close()
