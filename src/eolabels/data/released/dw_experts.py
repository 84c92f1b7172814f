"""Dynamic World expert tiles with their Sentinel-1/2 tiles → ``dw`` (spec §6, §9).

Layout (labels as released; S1/S2 as the authors' download scripts write them)::

    <train_labels_dir>/{EH,WH}/{biome}/dw_{X}.tif     expert training tiles (PANGAEA ``Experts``), 510 px
    <train_images_dir>/{EH,WH}/{biome}/s2_{X}.tif     Sentinel-2 L1C, 13 bands, int16 DN, same grid
    <train_images_dir>/{EH,WH}/{biome}/s1_{X}.tif     Sentinel-1 GRD VV, VH, float32 dB, same grid
    <test_labels_dir>/meta.csv                        expert-consensus test set (Zenodo 4766508):
                                                      one row per tile, columns filename, s2_system_index, …
    <test_labels_dir>/dw_release_labels/{p}{name}.tif its tiles, 512 px; {p} a 6-character prefix,
                                                      {name} the tile's ``filename`` in meta.csv
    <test_images_dir>/{s1,s2}_{name[3:]}.tif          their S1/S2 tiles (flat, as the test script saves them)

* Label ids as stored: 0 unlabelled, 1–9 the Dynamic World classes (water, trees, grass, flooded
  vegetation, crops, shrub and scrub, built, bare, snow and ice), 10 cloud; recoded to DW ids 0–8
  with 255 for unlabelled and cloud (``config/tables/dw_expert_to_dw.csv``).  A label file with more
  than one band: its second band is the label (as the authors' LMDB writer takes band index 1).
* A tile whose S2 or S1 tile is absent is dropped and counted (the authors' download failed for
  some tiles and they kept only complete pairs); a partner on another grid is an error.

Converted into the common layout (a few thousand tiles, a few GB).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from eolabels.cromss.remap import remap_dw_expert
from eolabels.data.kinds import DW
from eolabels.data.released.checks import (
    ReleasedLayoutError, Rejections, check_partner, read_raster, require_dir, require_files, to_uint16,
)
from eolabels.data.writer import DatasetWriter


TEST_PREFIX = 6  # the authors' test script reads a tile's name as file name[6:-4]


def label_tiles(split: str, settings: dict) -> list[Path]:
    """The label tiles of one split, in a stable order; an empty folder is an error."""
    folder = require_dir(settings[f"{split}_labels_dir"], f"local.dw.{split}_labels_dir")
    pattern = "*/*/dw_*.tif" if split == "train" else "dw_release_labels/*.tif"
    tiles = sorted(folder.glob(pattern))
    if not tiles:
        raise ReleasedLayoutError(f"local.dw.{split}_labels_dir: {folder} has no {pattern} label tiles")
    return tiles


def tile_name(label: Path, split: str) -> str:
    """The tile's name: ``{X}`` of ``dw_{X}.tif`` (train) or its meta.csv ``filename`` (test)."""
    return label.stem[TEST_PREFIX:] if split == "test" else label.stem[3:]


def partner(label: Path, split: str, settings: dict, modality: str) -> Path:
    images = Path(settings[f"{split}_images_dir"])
    if split == "test":
        return images / f"{modality}_{tile_name(label, split)[3:]}.tif"
    return images / label.relative_to(settings["train_labels_dir"]).parent / f"{modality}_{tile_name(label, split)}.tif"


def test_names(settings: dict) -> set[str]:
    """The tile names meta.csv lists (columns filename, s2_system_index required)."""
    meta_csv = require_files([Path(settings["test_labels_dir"]) / "meta.csv"], "local.dw.test_labels_dir")[0]
    try:
        meta = pd.read_csv(meta_csv, dtype=str)
    except (pd.errors.EmptyDataError, pd.errors.ParserError) as err:
        raise ReleasedLayoutError(f"{meta_csv}: not a readable CSV ({err})") from err
    missing = [c for c in ("filename", "s2_system_index") if c not in meta.columns]
    if missing:
        raise ReleasedLayoutError(f"{meta_csv}: missing columns {missing} (has {list(meta.columns)})")
    return set(meta["filename"])


def inputs(settings: dict) -> list[Path]:
    """Label tiles and meta.csv (image tiles are optional per tile: a missing partner drops the tile
    at import, as in the authors' pipeline); a test tile meta.csv does not list is an error."""
    names = test_names(settings)
    test = label_tiles("test", settings)
    unlisted = [p for p in test if tile_name(p, "test") not in names]
    if unlisted:
        raise ReleasedLayoutError(f"{unlisted[0]}: tile {tile_name(unlisted[0], 'test')!r} is not in meta.csv "
                                  f"({len(unlisted)} of {len(test)} test tiles unlisted)")
    for split in ("train", "test"):
        require_dir(settings[f"{split}_images_dir"], f"local.dw.{split}_images_dir")
    return [*label_tiles("train", settings), *test, Path(settings["test_labels_dir"]) / "meta.csv"]


def import_dw_experts(settings: dict, root: str | Path) -> Path:
    rejected = Rejections()
    inputs(settings)
    meta = DW.meta(
        source="local:dw_expert_tiles", layers=("s2", "s1", "dw"),
        description=f"Dynamic World expert tiles ({settings['train_labels_dir']}) and expert-consensus test "
        f"tiles ({settings['test_labels_dir']}) with their Sentinel-1/2 tiles",
        extra={"test_meta_rows": len(test_names(settings))},
    )
    writer = DatasetWriter(root, meta)
    for split in ("train", "test"):
        for label_path in tqdm(label_tiles(split, settings), desc=f"dw {split}", unit="tile"):
            s2_path, s1_path = (partner(label_path, split, settings, m) for m in ("s2", "s1"))
            missing = [m for m, p in (("S2", s2_path), ("S1", s1_path)) if not p.is_file()]
            if missing:
                rejected.add(f"no {' and '.join(missing)} tile", str(label_path))
                continue
            raw, grid = read_raster(label_path)
            raw = raw[1] if raw.shape[0] > 1 else raw[0]
            try:
                dw = remap_dw_expert(raw)
            except ValueError as err:
                raise ReleasedLayoutError(f"{label_path}: {err}") from err
            s2, s2_grid = read_raster(s2_path, bands=13)
            check_partner(s2_path, s2_grid, label_path, grid)
            s1, s1_grid = read_raster(s1_path, bands=2)
            check_partner(s1_path, s1_grid, label_path, grid)
            sample = tile_name(label_path, split)
            writer.add(sample, split, 0, grid, {
                "s2": to_uint16(s2, s2_path), "s1": s1.astype(np.float32), "dw": dw.astype(np.uint8),
            })
    if not writer.rows:
        raise ReleasedLayoutError(f"{settings['train_labels_dir']}: no tile has both its S1 and S2 tile ({rejected.to_json()})")
    writer.meta.extra["rejected"] = rejected.to_json()
    return writer.close()
