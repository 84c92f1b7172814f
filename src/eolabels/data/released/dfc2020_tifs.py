"""DFC2020 (SEN12MS ROIs) patches with the MODIS land cover → ``dfc2020`` (spec §6, epitome §9).

Layout (the IEEE GRSS Data Fusion Contest 2020 release, SEN12MS naming)::

    <root>/ROIs0000_{split}/s2_0/ROIs0000_{split}_s2_0_p{i}.tif    Sentinel-2 L1C, 13 bands, uint16 DN
    <root>/ROIs0000_{split}/s1_0/ROIs0000_{split}_s1_0_p{i}.tif    Sentinel-1 VV, VH, float32 dB
    <root>/ROIs0000_{split}/lc_0/ROIs0000_{split}_lc_0_p{i}.tif    SEN12MS ``lc``: 4 MODIS layers, uint16;
                                                                   layer 1 = IGBP 1–17 (500 m, upsampled)
    <root>/ROIs0000_{split}/dfc_0/ROIs0000_{split}_dfc_0_p{i}.tif  DFC2020 high-res labels, 1 band
    split = validation (986 patches, the training set of the papers) or test (5,128), 256 × 256 px

    or, as the CromSS authors rearranged it (``write_data_to_lmdb.py``), the same files in
    ``<root>/{split}/{s1,s2,lc,dfc}_{split}/``.

* DFC2020 legend 1 forest, 2 shrubland, 3 savanna, 4 grassland, 5 wetlands, 6 croplands, 7 urban,
  8 snow/ice, 9 barren, 10 water → the 8 classes of ``config/tables/dfc2020.csv`` through
  ``dfc2020_to_dw``; savanna, snow/ice and any other id have no class among the 8 and become 255,
  counted in ``dataset.json`` (the validation and test splits hold none).
* MODIS: IGBP layer 1 as uint8, 0 = no data.

Every patch of the split's ``s2_0`` folder needs its S1, lc and dfc partner (checked before any job
runs).  Converted into the common layout (a few GB).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from tqdm import tqdm

from eolabels.cromss.remap import dfc2020_to_dw
from eolabels.data.kinds import DFC2020
from eolabels.data.released.checks import (
    ReleasedLayoutError, Rejections, check_partner, read_raster, require_dir, require_files, to_uint16,
)
from eolabels.data.writer import DatasetWriter
from eolabels.tables import load_schema

SPLITS = ("validation", "test")
MODALITIES = ("s2", "s1", "lc", "dfc")
PATCH = re.compile(r"_p(\d+)$")


def modality_dir(root: Path, split: str, modality: str) -> Path:
    """The release's ``ROIs0000_{split}/{m}_0`` folder, or the authors' ``{split}/{m}_{split}``."""
    if not (root / f"ROIs0000_{split}").is_dir() and (root / split).is_dir():
        return root / split / f"{modality}_{split}"
    return root / f"ROIs0000_{split}" / f"{modality}_0"


def patch_file(root: Path, split: str, modality: str, i: int) -> Path:
    return modality_dir(root, split, modality) / f"ROIs0000_{split}_{modality}_0_p{i}.tif"


def patch_numbers(root: Path, split: str) -> list[int]:
    folder = require_dir(modality_dir(root, split, "s2"), f"local.dfc2020.root ({split} S2 patches)")
    numbers = sorted(int(PATCH.search(p.stem).group(1)) for p in folder.glob(f"ROIs0000_{split}_s2_0_p*.tif")
                     if PATCH.search(p.stem))
    if not numbers:
        raise ReleasedLayoutError(f"{folder}: no ROIs0000_{split}_s2_0_p*.tif patches")
    return numbers


def inputs(settings: dict) -> list[Path]:
    root = Path(settings["root"])
    files = [patch_file(root, split, m, i) for split in SPLITS for i in patch_numbers(root, split) for m in MODALITIES]
    return require_files(files, "local.dfc2020 (dfc2020_tifs)")


def dfc_labels(raw: np.ndarray, path: Path, rejected: Rejections) -> np.ndarray:
    """DFC2020 legend ids → the 8 classes, 255 where the legend id has none (counted)."""
    if raw.min() < 0 or raw.max() > 255:
        raise ReleasedLayoutError(f"{path}: DFC2020 label ids outside 0..255 ({raw.min()}..{raw.max()})")
    dw_like = dfc2020_to_dw(raw.astype(np.int64))
    other = dw_like == 8
    if other.any():
        rejected.add("pixels without a DFC2020 class (savanna, snow/ice, other) set to unlabelled", str(path))
    return np.where(other, 255, dw_like).astype(np.uint8)


def import_dfc2020_tifs(settings: dict, root_out: str | Path) -> Path:
    root, rejected = Path(settings["root"]), Rejections()
    igbp = load_schema("igbp")
    meta = DFC2020.meta(
        source="local:dfc2020_tifs",
        description=f"DFC2020 validation and test patches (SEN12MS layout) from {root}, MODIS IGBP from lc layer 1",
    )
    writer = DatasetWriter(root_out, meta)
    for split in SPLITS:
        for i in tqdm(patch_numbers(root, split), desc=f"dfc2020 {split}", unit="patch"):
            paths = {m: patch_file(root, split, m, i) for m in MODALITIES}
            s2, grid = read_raster(paths["s2"], bands=13)
            s1, s1_grid = read_raster(paths["s1"], bands=2)
            lc, lc_grid = read_raster(paths["lc"])
            dfc, dfc_grid = read_raster(paths["dfc"], bands=1)
            for m, g in (("s1", s1_grid), ("lc", lc_grid), ("dfc", dfc_grid)):
                check_partner(paths[m], g, paths["s2"], grid)
            igbp.validate_labels(lc[0], ignore_index=0, where=f"{paths['lc']} layer 1 (IGBP)")
            writer.add(f"{split}_p{i}", split, 0, grid, {
                "s2": to_uint16(s2, paths["s2"]), "s1": s1.astype(np.float32),
                "modis": lc[0].astype(np.uint8), "dfc": dfc_labels(dfc[0], paths["dfc"], rejected),
            })
    writer.meta.extra["rejected"] = rejected.to_json()
    return writer.close()
