"""Readers for the released layouts of the papers' datasets, one small module per layout.

Each turns a download, exactly as its authors publish it, into a dataset of the common layout
(``dataset.json`` + ``index.csv`` + GeoTIFFs, :mod:`eolabels.data.index`) through
:class:`~eolabels.data.writer.DatasetWriter`, so every stage reads it unchanged.  Each module's
docstring gives the layout, bands and classes.  A format is chosen per dataset in
``config.local.<dataset>.format``; :data:`FORMATS` lists them.

All of them convert rather than index in place: the common layout is one multi-band GeoTIFF per
layer and sample, while the releases keep one file per band (SSL4EO-S12), pickled arrays in LMDBs
(CromSS) or multi-layer tiles (CVPR 2019); converting once also checks every tile (grids of the
modalities agree, label ids in their schema, no truncated file) before any stage trains on it.
The price is disk: about as much again as the imported part of the download.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from eolabels.data.released import chesapeake_cvpr, cromss_lmdb, dfc2020_tifs, dw_experts, ssl4eo_folders
from eolabels.data.released.checks import ReleasedLayoutError


@dataclass(frozen=True)
class ReleasedFormat:
    """One released layout: the datasets it can produce, what it reads, how it imports."""

    datasets: tuple[str, ...]
    inputs: Callable[[dict, str], list[Path]]
    read: Callable[[dict, str, Path], Path]


FORMATS: dict[str, ReleasedFormat] = {
    "ssl4eo_s12_folders": ReleasedFormat(
        ("noldo",), lambda s, d: ssl4eo_folders.inputs(s), lambda s, d, r: ssl4eo_folders.import_ssl4eo_folders(s, r)),
    "cromss_nol_lmdb": ReleasedFormat(
        ("noldo",), lambda s, d: cromss_lmdb.nol_inputs(s), lambda s, d, r: cromss_lmdb.import_nol(s, r)),
    "cromss_dwosm_lmdb": ReleasedFormat(
        ("dw", "osm"), cromss_lmdb.dwosm_inputs, lambda s, d, r: cromss_lmdb.import_dwosm(s, r, d)),
    "dw_expert_tiles": ReleasedFormat(
        ("dw",), lambda s, d: dw_experts.inputs(s), lambda s, d, r: dw_experts.import_dw_experts(s, r)),
    "dfc2020_tifs": ReleasedFormat(
        ("dfc2020",), lambda s, d: dfc2020_tifs.inputs(s), lambda s, d, r: dfc2020_tifs.import_dfc2020_tifs(s, r)),
    "cromss_dfc2020_lmdb": ReleasedFormat(
        ("dfc2020",), lambda s, d: cromss_lmdb.dfc2020_inputs(s), lambda s, d, r: cromss_lmdb.import_dfc2020_lmdb(s, r)),
    "chesapeake_cvpr_tiles": ReleasedFormat(
        ("lsr",), lambda s, d: chesapeake_cvpr.inputs(s), lambda s, d, r: chesapeake_cvpr.import_chesapeake_cvpr(s, r)),
}


def released_format(name: str, dataset: str) -> ReleasedFormat:
    """The format ``name`` for ``dataset``; an unknown or mismatched one names the valid choices."""
    fmt = FORMATS.get(name)
    if fmt is None or dataset not in fmt.datasets:
        valid = sorted(n for n, f in FORMATS.items() if dataset in f.datasets)
        raise ReleasedLayoutError(f"local.{dataset}.format {name!r} cannot produce dataset {dataset!r}; released formats: {valid}")
    return fmt


__all__ = ["FORMATS", "ReleasedFormat", "ReleasedLayoutError", "released_format"]
