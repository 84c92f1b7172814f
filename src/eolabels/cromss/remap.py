"""Label-id recoding of the CromSS downstream datasets (spec §6).

The stored label ids differ from the model's: DW expert tiles use 0 = unlabelled and 10 = cloud,
OSM tiles use 0 = unlabelled, DFC2020 uses its own 1..10 legend.  Each function maps stored ids
to model ids with 255 as the ignore value, through a lookup table so that any id outside the
table is an error instead of a silent wrong class.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

IGNORE_INDEX = 255
# DW expert labels: 0 unlabelled → ignore, k → k−1 for k = 1..9.  Cloud (10) ends up ignored too:
# ``dwosm_dataset_lmdb.py`` recodes in place, 10 → 0 first and then 0 → 255 (golden ds/dwosm/*/gt)
DW_EXPERT_TO_MODEL: dict[int, int] = {
    0: IGNORE_INDEX, **{k: k - 1 for k in range(1, 10)}, 10: IGNORE_INDEX
}
# OSM labels: 0 unlabelled → ignore, k → k−1 for k = 1..13
OSM_TO_MODEL: dict[int, int] = {0: IGNORE_INDEX, **{k: k - 1 for k in range(1, 14)}}
# DFC2020 legend → DW-like ids at LMDB write time; 0, 3 (Savanna), 8 (Snow/Ice) and any other → 8
DFC2020_TO_DW: dict[int, int] = {1: 1, 2: 5, 4: 2, 5: 3, 6: 4, 7: 6, 9: 7, 10: 0}
DFC2020_OTHER = 8


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
    """Stored DW expert ids 0..10 → DW model ids 0..8, 255 = unlabelled or cloud (§6)."""
    return remap_labels(labels, DW_EXPERT_TO_MODEL, what="DW")


def remap_osm(labels: np.ndarray) -> np.ndarray:
    """Stored OSM ids 0..13 → OSM model ids 0..12, 255 = unlabelled (§6)."""
    return remap_labels(labels, OSM_TO_MODEL, what="OSM")


def dfc2020_to_dw(labels: np.ndarray) -> np.ndarray:
    """DFC2020 legend → DW-like ids, every unlisted id → 8 (``convert_label_annotations``, §6)."""
    return remap_labels(labels, DFC2020_TO_DW, default=DFC2020_OTHER, what="DFC2020")
