"""NoLDO-S12 assembly: only locations complete in every season survive, and the card says why others did not."""

import json
import os

import numpy as np
import pytest

from eolabels.data.assembly import assemble
from eolabels.data.datacard import dataset_card
from eolabels.data.geotiff import GridSpec
from eolabels.data.index import DatasetIndex, IndexError_
from eolabels.data.kinds import NOLDO
from eolabels.data.writer import DatasetWriter

GRID = GridSpec(crs="EPSG:32632", transform=(10.0, 0.0, 500_000.0, 0.0, -10.0, 5_000_000.0), height=8, width=8)
# location: the (season, layer) items it lacks
LACKING = {
    "loc0": set(),
    "loc1": {(3, "dw")},  # winter label missing
    "loc2": {(0, "s1"), (1, "s1")},  # spring and summer S1 missing
    "loc3": {(1, "dw"), (1, "s2")},  # summer label and S2 missing
    "loc4": set(),
    "loc5": {(2, None)},  # the autumn row itself is missing (a season folder absent)
}


def _raw(root, lacking=LACKING):
    writer = DatasetWriter(root, NOLDO.meta(source="synthetic", description="hand-built raw set"))
    for n, (location, items) in enumerate(lacking.items()):
        for season in range(4):
            if (season, None) in items:
                continue
            layers = {
                "s2": np.full((13, 8, 8), 100 + n, dtype=np.uint16),
                "s1": np.full((2, 8, 8), -10.0 - n, dtype=np.float32),
                "dw": np.full((1, 8, 8), season, dtype=np.uint8),
                "truth": np.full((1, 8, 8), season, dtype=np.uint8),
            }
            writer.add(location, "train", season, GRID, {k: v for k, v in layers.items() if (season, k) not in items})
    writer.close()
    return root


def test_only_complete_locations_are_kept_and_the_drops_counted(tmp_path):
    report = assemble(_raw(tmp_path / "raw"), tmp_path / "noldo")
    assert (report.locations_raw, report.locations_kept, report.locations_dropped) == (6, 2, 4)
    assert report.dropped_by_layer == {"s2": 2, "s1": 2, "dw": 3}  # loc5's missing row lacks all three
    assert report.missing == {
        "spring": {"s2": 0, "s1": 1, "dw": 0},
        "summer": {"s2": 1, "s1": 1, "dw": 1},
        "autumn": {"s2": 1, "s1": 1, "dw": 1},
        "winter": {"s2": 0, "s1": 0, "dw": 1},
    }
    index = DatasetIndex.open(tmp_path / "noldo")
    assert sorted(set(index.table["id"])) == ["loc0", "loc4"] and len(index) == 8
    card = dataset_card(tmp_path / "noldo")  # reads every kept raster through the checks
    assert card["assembly"]["locations_kept"] == 2 and card["assembly"]["missing_by_season"]["summer"]["dw"] == 1
    assert json.loads((tmp_path / "noldo" / "dataset.json").read_text())["extra"]["assembly"]["kept_fraction"] == 0.3333


def test_kept_files_are_linked_not_rewritten(tmp_path):
    raw = _raw(tmp_path / "raw")
    assemble(raw, tmp_path / "noldo")
    index = DatasetIndex.open(tmp_path / "noldo")
    row = index.table.iloc[0]
    kept, source = index.path(row, "s2"), raw / row["s2"]
    assert kept.is_file() and kept.parent.is_relative_to(tmp_path / "noldo")
    assert os.stat(kept).st_ino == os.stat(source).st_ino  # a hard link: no second copy on disk


def test_no_complete_location_and_a_listed_file_gone_fail_naming_them(tmp_path):
    raw = _raw(tmp_path / "raw", {"loc1": {(3, "dw")}})
    with pytest.raises(IndexError_, match=r"no location has \['s2', 's1', 'dw'\] in every season"):
        assemble(raw, tmp_path / "noldo")
    raw = _raw(tmp_path / "raw2", {"loc0": set()})
    gone = raw / DatasetIndex.open(raw).table.iloc[2]["s1"]
    gone.unlink()
    with pytest.raises(IndexError_, match=f"{gone}: listed in .* but missing"):
        assemble(raw, tmp_path / "noldo2")
