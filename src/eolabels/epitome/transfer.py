"""The p(ℓ|c) tables LSR runs on (spec §6, §9.2, §10), built from ``config/tables/`` — never literals.

A :class:`LabelTransfer` is the K×Lc matrix plus the coarse code of each row (its *slot*), so coarse
maps can be turned into row indices with an error naming any code the table lacks.  The coarse
layer's no-data code gets an all-zero row: such pixels take part in nothing, as the notebook's NLCD
0/255 slots (spec §6, §10).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import torch
from torch import Tensor

from eolabels.epitome.dfc import soft_table_from_mapping
from eolabels.epitome.lsr import coarse_slots
from eolabels.tables import load_mapping, load_schema, load_transfer_matrix


@dataclass(frozen=True)
class LabelTransfer:
    """p(ℓ | c): ``table[k, ℓ]`` for coarse code ``coarse_codes[k]`` and fine class position ℓ."""

    table: Tensor
    coarse_codes: tuple[int, ...]
    fine_schema: str
    name: str
    oracle: bool = False

    def slots(self, codes: Tensor, where: str) -> Tensor:
        """Row index of every pixel's coarse code; a code without a row fails naming ``where``."""
        try:
            return coarse_slots(codes, self.coarse_codes)
        except ValueError as err:
            raise ValueError(f"{where}: {err} ({self.name})") from None

    def with_nodata(self, nodata: int | None) -> "LabelTransfer":
        """The same table with an all-zero row for the coarse layer's no-data code (if not a row yet)."""
        if nodata is None or int(nodata) in self.coarse_codes:
            return self
        table = torch.cat([self.table, self.table.new_zeros(1, self.table.shape[1])])
        return LabelTransfer(table, (*self.coarse_codes, int(nodata)), self.fine_schema, self.name, self.oracle)

    @property
    def label(self) -> str:
        """How outputs name the table; an oracle table says so everywhere (spec §9.2, option 1)."""
        return f"ORACLE p(l|c) estimated from the truth ({self.name})" if self.oracle else self.name


def table_from_file(name: str, fine_schema: str) -> LabelTransfer:
    """A probability table of ``config/tables/`` used as listed (spec §6), checked against the fine schema."""
    matrix, source_ids, target_ids = load_transfer_matrix(name, row_sums="as_listed")
    schema = load_schema(fine_schema)
    if list(target_ids) != list(schema.ids):
        raise ValueError(
            f"table {name!r}: columns are classes {target_ids}, but the truth schema {fine_schema!r} has {schema.ids}"
        )
    return LabelTransfer(torch.from_numpy(matrix), tuple(source_ids), fine_schema, name)


def igbp_soft_table(confidence: float, unscored_splits: Mapping[str, Sequence[str]]) -> LabelTransfer:
    """Non-leaky IGBP → DFC2020 p(ℓ|c) (spec §9.2 option 2) through the project's class maps.

    IGBP codes go to the original DFC2020 classes (``igbp_to_dfc2020``) and on to the 8 scored
    classes (``dfc2020_to_dw``, schema ``dfc2020``).  An original class that is not scored (savanna,
    snow/ice) is split evenly over the scored classes ``unscored_splits[name]`` lists, or left
    unmapped (an all-zero row) when it has no entry.
    """
    scored = load_schema("dfc2020")
    original = load_schema("dfc2020_original")
    to_original, to_scored = load_mapping("igbp_to_dfc2020"), load_mapping("dfc2020_to_dw")
    unknown = {
        name: [n for n in targets if n not in scored.names] for name, targets in unscored_splits.items()
    }
    if any(unknown.values()) or any(name not in original.names for name in unscored_splits):
        raise ValueError(
            f"unscored_splits must map original DFC2020 class names {original.names} to scored class names "
            f"{scored.names}; got {dict(unscored_splits)}"
        )
    mapping: dict[int, dict[int, float]] = {}
    for code, dfc_id in to_original.items():
        target = to_scored[dfc_id]
        if target in scored.ids:
            mapping[code] = {target: 1.0}
        else:
            split = unscored_splits.get(original.names[original.index_of(dfc_id)], ())
            mapping[code] = {scored.ids[scored.names.index(n)]: 1.0 for n in split}
    codes = load_schema("igbp").ids
    table = soft_table_from_mapping(mapping, codes, scored.ids, confidence)
    return LabelTransfer(table, tuple(codes), "dfc2020", f"soft IGBP->DFC2020 table (confidence {confidence})")


def oracle_table(
    coarse_maps: Sequence[Tensor], truth_maps: Sequence[Tensor], coarse_codes: Sequence[int], fine_schema: str,
    ignore_index: int = 255,
) -> LabelTransfer:
    """p(ℓ|c) from the co-occurrence of coarse codes and *truth* (spec §9.2 option 1): uses the labels
    LSR is scored on, so it is an oracle and is labelled as one in every output.  Pixels without a
    truth label or whose coarse code is not in ``coarse_codes`` (no-data) are left out."""
    classes = load_schema(fine_schema).num_classes
    counts = torch.zeros(len(coarse_codes), classes, dtype=torch.float64)
    for coarse, truth in zip(coarse_maps, truth_maps, strict=True):
        valid = (truth != ignore_index) & torch.isin(coarse, torch.tensor(list(coarse_codes)))
        slots = coarse_slots(coarse[valid], coarse_codes)
        counts.index_put_((slots, truth[valid]), torch.ones(len(slots), dtype=torch.float64), accumulate=True)
    table = counts / counts.sum(1, keepdim=True).clamp_min(1.0)
    return LabelTransfer(table, tuple(coarse_codes), fine_schema, "co-occurrence of coarse labels and truth", True)
