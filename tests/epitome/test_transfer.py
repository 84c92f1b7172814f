"""p(ℓ|c) tables for LSR (epitome/transfer.py): from config/tables, the soft IGBP table, the oracle."""

from __future__ import annotations

import pytest
import torch

from eolabels.epitome.transfer import LabelTransfer, igbp_soft_table, oracle_table, table_from_file

SAVANNA_SPLIT = {"savanna": ["forest", "shrubland", "grassland"]}


def test_nlcd_table_as_listed_with_a_nodata_row():
    transfer = table_from_file("nlcd_to_lsr4_prob", "lsr4")
    assert transfer.table.shape == (20, 4) and transfer.coarse_codes[:2] == (11, 12)
    assert transfer.table[0].tolist() == pytest.approx([0.97, 0.01, 0.01, 0.02])  # spec §10, row 11
    with_zero = transfer.with_nodata(0)
    assert with_zero.coarse_codes[-1] == 0 and torch.all(with_zero.table[-1] == 0)
    assert with_zero.with_nodata(0) is with_zero
    slots = with_zero.slots(torch.tensor([[11, 0], [95, 41]]), "tile x")
    assert slots.tolist() == [[0, 20], [19, 7]]  # 41 is the 8th code of nlcd.csv (no 0 row there)


def test_unknown_code_and_wrong_schema_fail_with_names():
    transfer = table_from_file("nlcd_to_lsr4_prob", "lsr4")
    with pytest.raises(ValueError, match=r"tile7.*\[99\]"):
        transfer.slots(torch.tensor([11, 99]), "tile7")
    with pytest.raises(ValueError, match="truth schema 'dfc2020'"):
        table_from_file("nlcd_to_lsr4_prob", "dfc2020")


def test_soft_igbp_table_by_hand():
    # dfc2020 positions: water 0, forest 1, grassland 2, wetland 3, cropland 4, shrubland 5, urban 6, barren 7
    transfer = igbp_soft_table(0.7, SAVANNA_SPLIT)
    table = transfer.table
    assert transfer.coarse_codes == tuple(range(1, 18)) and table.shape == (17, 8)
    rest = 0.3 / 7
    assert table[0].tolist() == pytest.approx([rest, 0.7, rest, rest, rest, rest, rest, rest])  # IGBP 1 → forest
    third = 0.7 / 3
    assert table[8].tolist() == pytest.approx([0.06, third, third, 0.06, 0.06, third, 0.06, 0.06])  # savanna
    assert torch.all(table[14] == 0)  # snow/ice: no scored class, no split
    assert table[16].argmax() == 0 and table[13].argmax() == 4  # water, cropland mosaic
    with pytest.raises(ValueError, match="unscored_splits"):
        igbp_soft_table(0.7, {"savanna": ["jungle"]})


def test_oracle_table_is_row_normalised_co_occurrence_and_says_oracle():
    coarse = [torch.tensor([[5, 5], [7, 7], [0, 0]]), torch.tensor([[5, 9]])]  # 0 = no-data, left out
    truth = [torch.tensor([[0, 1], [1, 255], [2, 3]]), torch.tensor([[1, 0]])]
    transfer = oracle_table(coarse, truth, [5, 7, 9], "lsr4")
    assert transfer.table.tolist() == [[1 / 3, 2 / 3, 0, 0], [0, 1, 0, 0], [1, 0, 0, 0]]
    assert transfer.oracle and "ORACLE" in transfer.label
    assert "ORACLE" not in LabelTransfer(transfer.table, (5, 7, 9), "lsr4", "file").label
