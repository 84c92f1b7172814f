"""Label-id recoding of the CromSS downstream datasets (spec §6).

The stored label ids differ from the model's: DW expert tiles use 0 = unlabelled and 10 = cloud,
OSM tiles use 0 = unlabelled, DFC2020 uses its own 1..10 legend.  The maps are the CSV tables of
``config/tables`` (``dw_expert_to_dw``, ``osm_legend_to_osm``, ``dfc2020_to_dw``); each function
applies one through a lookup so that any id outside the table is an error instead of a silent
wrong class.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Mapping

import numpy as np

from eolabels.tables import load_mapping

IGNORE_INDEX = 255
# the reference's DFC2020 writer sends every id without a mapping (0, 11, …) to 8: its else branch
DFC2020_OTHER = 8


@lru_cache(maxsize=None)
def _table(name: str) -> dict[int, int]:
    return load_mapping(name)


def remap_labels(labels: np.ndarray, table: Mapping[int, int], default: int | None = None,
                 what: str = "label") -> np.ndarray:
    """Apply ``table`` to an integer label array; ids not in it take ``default`` or raise."""
    labels = np.asarray(labels)
    if labels.dtype.kind not in "iu":
        raise ValueError(f"{what} ids must be integers, got dtype {labels.dtype}")
    ids = np.unique(labels)
    unknown = [int(i) for i in ids if int(i) not in table]
    if unknown and default is None:
        raise ValueError(f"{what} ids {unknown} have no mapping (known: {sorted(table)})")
    out = np.empty(labels.shape, dtype=np.int64)
    out[...] = default if default is not None else 0
    for src, dst in table.items():
        out[labels == src] = dst
    return out


def remap_dw_expert(labels: np.ndarray) -> np.ndarray:
    """Stored DW expert ids 0..10 → DW model ids 0..8, 255 = unlabelled or cloud (§6).

    Cloud (10) ends up ignored: ``dwosm_dataset_lmdb.py`` recodes in place, 10 → 0 and then
    0 → 255 (golden ds/dwosm/*/gt), which ``dw_expert_to_dw.csv`` states directly.
    """
    return remap_labels(labels, _table("dw_expert_to_dw"), what="DW")


def remap_osm(labels: np.ndarray) -> np.ndarray:
    """Stored OSM ids 0..13 → OSM model ids 0..12, 255 = unlabelled (§6)."""
    return remap_labels(labels, _table("osm_legend_to_osm"), what="OSM")


def dfc2020_to_dw(labels: np.ndarray) -> np.ndarray:
    """DFC2020 legend → DW-like ids, every unlisted id → 8 (``convert_label_annotations``, §6)."""
    return remap_labels(labels, _table("dfc2020_to_dw"), default=DFC2020_OTHER, what="DFC2020")
