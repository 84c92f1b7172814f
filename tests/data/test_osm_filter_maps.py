"""The OSM↔DW filter on raw and aligned OSM maps of the same tiles (spec netsimilarity.md §5.c, C5): the
table shows both maps' kept tiles, pixels and accuracy against the truth, worked out by hand on 4×4 tiles."""

import numpy as np
import pandas as pd
import pytest

from eolabels.data.geotiff import GridSpec, read_geotiff
from eolabels.data.index import DatasetIndex
from eolabels.data.kinds import DW, OSM_LABELS
from eolabels.data.osm_filter import same_class
from eolabels.data.stages import filter_osm, join_osm
from eolabels.data.writer import DatasetWriter

U = 255
W, F = 8, 2  # OSM water bodies -> {DW water 0}; OSM forests -> {DW trees 1}
COLS = np.arange(4)[None, :].repeat(4, axis=0)
ROWS = COLS.T


def _grid(i):
    return GridSpec(crs="EPSG:32632", transform=(10.0, 0.0, 500_000.0 + 100 * i, 0.0, -10.0, 5_000_000.0), height=4, width=4)


# id: DW split, true DW classes, DW labels, registered OSM, raw (misregistered) OSM, aligned OSM
TILES = {
    # water | trees; raw OSM shifted one column right (column 0 unmapped), aligned = registered
    "a": ("train", np.where(COLS < 2, 0, 1), np.where(COLS < 2, 0, 1), np.where(COLS < 2, W, F),
          np.select([COLS == 0, COLS < 3], [U, W], F), np.where(COLS < 2, W, F)),
    # all water; DW mislabels (0,0) as trees; raw OSM shifted one row down (row 0 unmapped), aligned misses (3,3)
    "b": ("test", np.zeros((4, 4)), np.where((ROWS == 0) & (COLS == 0), 1, 0), np.full((4, 4), W),
          np.where(ROWS == 0, U, W), np.where((ROWS == 3) & (COLS == 3), U, W)),
    # all trees; raw OSM has water spilled over columns 0-1, aligned = registered
    "c": ("train", np.ones((4, 4)), np.ones((4, 4)), np.full((4, 4), F),
          np.where(COLS < 2, W, F), np.full((4, 4), F)),
}
# by hand, per maps and θ: (kept, kept_pixels, agreeing with the true DW class, equal to the registered OSM)
# raw:     a 8 of 12 agree (column 2 water vs trees), OA 0.667; b 12 of 12 (row 0 unmapped), OA 1;
#          c 8 of 16, OA 0.5.  θ = 0.9 keeps b: 12 px, 12 agree, 12 equal; θ = 0 keeps all: 40 px, 28, 28
# aligned: a 16 of 16; b 14 of 15 against DW (its mislabel at (0,0)), 15 of 15 against the truth; c 16 of 16.
#          θ = 0.9 and θ = 0 keep all: 47 px, 47 agree, 47 equal
HAND = {
    ("raw", 0.0): (3, 40, 28 / 40, 28 / 40, (8 / 12 + 1 + 0.5) / 3),
    ("raw", 0.9): (1, 12, 1.0, 1.0, 1.0),
    ("aligned", 0.0): (3, 47, 1.0, 1.0, (1 + 14 / 15 + 1) / 3),
    ("aligned", 0.9): (3, 47, 1.0, 1.0, (1 + 14 / 15 + 1) / 3),
}


@pytest.fixture()
def maps(tmp_path):
    dw = DatasetWriter(tmp_path / "dw", DW.meta(source="synthetic", description="hand-built", layers=("s2", "dw", "truth")))
    osm = {name: DatasetWriter(tmp_path / name, OSM_LABELS.meta(source="synthetic", description="hand-built",
                                                                  layers=("osm", "osm_registered")))
           for name in ("osm_raw", "osm_aligned")}
    for i, (tile, (split, truth, label, registered, raw, aligned)) in enumerate(TILES.items()):
        u8 = lambda a: np.asarray(a, dtype=np.uint8)[None]
        dw.add(tile, split, 1, _grid(i), {"s2": np.full((13, 4, 4), 1000 + i, dtype=np.uint16), "dw": u8(label),
                                          "truth": u8(truth)})
        for name, labels in (("osm_raw", raw), ("osm_aligned", aligned)):
            osm[name].add(tile, split, 1, _grid(i), {"osm": u8(labels), "osm_registered": u8(registered)})
    dw.close()
    for writer in osm.values():
        writer.close()
    return tmp_path


def test_same_class_counts_pixels_labelled_in_both():
    labels = np.array([[W, W], [F, U]], dtype=np.uint8)
    reference = np.array([[W, F], [U, F]], dtype=np.uint8)
    assert same_class(labels, reference) == (1, 2)


def test_the_table_shows_raw_and_aligned_maps_kept_pixels_and_accuracy(maps):
    out = maps / "out"
    counts = filter_osm(
        dw_dir=maps / "dw", osm_dir=maps / "osm_aligned", role="label", out_dir=maps / "osm",
        agreement=out / "agreement.csv", table=out / "t.csv", table_md=out / "t.md", histogram=out / "h.png",
        settings={"threshold": 0.9, "sweep": [0.0], "test_tiles": 1, "pad_moved_tiles": False}, seed=0,
        maps="aligned", compare={"raw": maps / "osm_raw"},
    )
    table = pd.read_csv(out / "t.csv")
    assert table["maps"].tolist() == ["raw", "raw", "aligned", "aligned"]  # raw first, θ ascending
    for (name, theta), (kept, pixels, accuracy, registered, mean_oa) in HAND.items():
        row = table[(table["maps"] == name) & (table["threshold"] == theta)].iloc[0]
        assert (row["kept"], row["kept_pixels"]) == (kept, pixels), (name, theta)
        assert row["osm_accuracy_kept"] == pytest.approx(accuracy, abs=1e-4), (name, theta)
        assert row["registered_accuracy_kept"] == pytest.approx(registered, abs=1e-4), (name, theta)
        assert row["mean_oa_kept"] == pytest.approx(mean_oa, abs=1e-4), (name, theta)
    markdown = (out / "t.md").read_text()
    assert "| raw " in markdown and "| aligned " in markdown and "keeps θ = 0.9 on the aligned maps" in markdown

    per_tile = pd.read_csv(out / "agreement.csv").set_index(["maps", "id"])
    assert per_tile.loc[("raw", "a"), ["agree", "labelled"]].tolist() == [8, 12]
    assert per_tile.loc[("aligned", "b"), ["agree", "labelled", "truth_agree", "truth_labelled"]].tolist() == [14, 15, 15, 15]

    # what is kept is the aligned maps: every tile, their OSM layer the aligned one
    assert counts["kept"] == 3 and counts["osm_maps"] == "aligned"
    kept = DatasetIndex.open(maps / "osm")
    row = kept.table.set_index("id").index.get_loc("a")
    osm, _, _ = read_geotiff(kept.path(kept.table.iloc[row], "osm"))
    assert np.array_equal(osm[0], TILES["a"][5])


def test_the_join_keeps_every_tile_in_its_dw_split(maps):
    join_osm(dw_dir=maps / "dw", osm_dir=maps / "osm_raw", out_dir=maps / "osm_joined")
    joined = DatasetIndex.open(maps / "osm_joined")
    assert dict(zip(joined.table["id"], joined.table["split"])) == {"a": "train", "b": "test", "c": "train"}
    assert joined.meta.name == "osm" and {"s2", "osm", "dw", "osm_registered"} <= set(joined.meta.layers)
    osm, _, _ = read_geotiff(joined.path(joined.table.iloc[2], "osm"))
    assert np.array_equal(osm[0], TILES["c"][4])  # the raw maps, as they are
