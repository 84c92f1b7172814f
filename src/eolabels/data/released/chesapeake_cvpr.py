"""NAIP + NLCD + Chesapeake land cover tiles of the CVPR 2019 release → ``lsr`` (epitome spec).

Layout (Robinson et al., CVPR 2019, "Large scale high-resolution land cover mapping")::

    <root>/{state}_1m_{year}_extended-debuffered-{split}_tiles/m_{tile}_{layer}.tif
    layer  naip-new     NAIP 1 m, 4 bands R, G, B, NIR, uint8           → image
           nlcd         NLCD 2011 class codes (11 … 95) at 1 m, uint8, 0 no data → nlcd
           lc           Chesapeake high-res land cover 1 water, 2 tree canopy, 3 low vegetation,
                        4 barren, 5 impervious (other), 6 impervious (road), 15 and 0 no data → truth
                        (the 4 LSR classes through ``config/tables/chesapeake_to_lsr4.csv``, 255
                        where there is no data)
           (naip-old, landsat-leaf-{on,off}, buildings, landuse are not read)
    split  train, val, test; states de, md, ny, pa (2013), va, wv (2014); CRS UTM 17N or 18N (NAD83)

Every ``*_naip-new.tif`` of the chosen split (and states) needs its ``nlcd`` and ``lc`` partners on
the same grid (checked before any job runs).  Converted into the common layout: the LSR stages read
each tile whole, and a state's test split is a few GB.  Beside the ``.npz`` patches of
:func:`eolabels.data.local.import_chesapeake`, these tiles keep their georeference.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from tqdm import tqdm

from eolabels.data.kinds import LSR
from eolabels.data.released.checks import (
    ReleasedLayoutError, check_partner, read_raster, require_dir, require_files,
)
from eolabels.data.writer import DatasetWriter
from eolabels.tables import load_mapping, load_schema, lookup_table

FOLDER = re.compile(r"^(?P<state>[a-z]{2})_1m_(?P<year>\d{4})_extended-debuffered-(?P<split>train|val|test)_tiles$")
LAYERS = ("naip-new", "nlcd", "lc")


def tile_folders(settings: dict) -> list[Path]:
    root = require_dir(settings["root"], "local.lsr.root")
    states = set(settings.get("states") or [])
    folders = [p for p in sorted(root.iterdir()) if p.is_dir() and (m := FOLDER.match(p.name))
               and m["split"] == settings.get("split", "test") and (not states or m["state"] in states)]
    if not folders:
        raise ReleasedLayoutError(
            f"local.lsr.root: {root} has no {{state}}_1m_{{year}}_extended-debuffered-{settings.get('split', 'test')}_tiles "
            f"folder{' for states ' + str(sorted(states)) if states else ''}"
        )
    return folders


def tiles(settings: dict) -> list[tuple[Path, str]]:
    """(folder, tile prefix ``m_…``) of every NAIP tile in the chosen folders."""
    out = []
    for folder in tile_folders(settings):
        found = sorted(folder.glob("m_*_naip-new.tif"))
        if not found:
            raise ReleasedLayoutError(f"{folder}: no m_*_naip-new.tif tiles (the folder is empty or incomplete)")
        out += [(folder, p.name[: -len("_naip-new.tif")]) for p in found]
    return out


def inputs(settings: dict) -> list[Path]:
    files = [folder / f"{prefix}_{layer}.tif" for folder, prefix in tiles(settings) for layer in LAYERS]
    return require_files(files, "local.lsr (chesapeake_cvpr_tiles)")


def import_chesapeake_cvpr(settings: dict, root: str | Path) -> Path:
    to_lsr4 = lookup_table(load_mapping("chesapeake_to_lsr4"))
    nlcd_schema, chesapeake_schema = load_schema("nlcd"), load_schema("chesapeake")
    meta = LSR.meta(
        source="local:chesapeake_cvpr_tiles",
        description=f"NAIP tiles with NLCD and Chesapeake land cover (CVPR 2019 release, {settings['root']}, "
        f"split {settings.get('split', 'test')})",
        extra={
            "block_px": 30, "georeferenced": True,
            "label_quality": [{"label": "nlcd", "reference": "truth", "via_argmax": "nlcd_to_lsr4_prob"}],
        },
    )
    writer = DatasetWriter(root, meta)
    for folder, prefix in tqdm(tiles(settings), desc="chesapeake tiles", unit="tile"):
        paths = {layer: folder / f"{prefix}_{layer}.tif" for layer in LAYERS}
        naip, grid = read_raster(paths["naip-new"], bands=4)
        nlcd, nlcd_grid = read_raster(paths["nlcd"], bands=1)
        lc, lc_grid = read_raster(paths["lc"], bands=1)
        check_partner(paths["nlcd"], nlcd_grid, paths["naip-new"], grid)
        check_partner(paths["lc"], lc_grid, paths["naip-new"], grid)
        nlcd_schema.validate_labels(nlcd[0], ignore_index=0, where=str(paths["nlcd"]))
        chesapeake_schema.validate_labels(lc[0], ignore_index=0, where=str(paths["lc"]))  # 0 outside the survey
        if naip.dtype != np.uint8:
            raise ReleasedLayoutError(f"{paths['naip-new']}: NAIP must be uint8, got {naip.dtype}")
        state_year = "_".join(folder.name.split("_")[:3:2])
        writer.add(f"{state_year}_{prefix}", "test", 0, grid, {
            "image": naip, "nlcd": nlcd[0].astype(np.uint8), "truth": to_lsr4[lc[0].astype(np.int64)],
        })
    return writer.close()
