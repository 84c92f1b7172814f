"""The OSM↔DW agreement filter on hand-built 4×4 tiles whose OA is worked out by hand (spec §9)."""

import numpy as np
import pandas as pd
import pytest

from eolabels.data.geotiff import GridSpec
from eolabels.data.index import DatasetIndex, IndexError_
from eolabels.data.kinds import DW, OSM_LABELS
from eolabels.data.osm_filter import (
    PairedTiles,
    agreement_table,
    load_agreement_lookup,
    pad_grid,
    split_tiles,
    sweep_table,
    tile_agreement,
    tile_row,
)
from eolabels.data.stages import filter_osm
from eolabels.data.writer import DatasetWriter

U = 255
# OSM model ids: 10 shrub/herbaceous -> {grass 2, shrub 5}; 7 permanent crops -> {trees 1, crops 4};
# 8 water bodies -> {water 0}; 2 forests -> {trees 1}
OSM_TILE = np.array([
    [10, 10, 10, U],
    [10, 10, 7, 7],
    [8, 8, 7, 7],
    [8, 2, U, U],
], dtype=np.uint8)
DW_TILE = np.array([
    [2, 5, 4, 0],
    [5, U, 4, 1],
    [0, 3, 1, 4],
    [U, 1, 1, 6],
], dtype=np.uint8)
# by hand: unlabelled on one side or both at (0,3) (1,1) (3,0) (3,2) (3,3) -> 11 pixels labelled in both;
# disagreeing: (0,2) shrub/herbaceous vs crops, (2,1) water bodies vs flooded vegetation -> 9 agree
HAND_AGREE, HAND_LABELLED = 9, 11


def test_table_one_maps_a_class_to_two_dw_classes():
    allowed = load_agreement_lookup()
    assert allowed[10, 2] and allowed[10, 5] and not allowed[10, 4]
    assert allowed[7, 1] and allowed[7, 4] and not allowed[8, 3]
    assert not allowed[U].any() and not allowed[:, U].any()


def test_oa_of_the_hand_built_pair():
    agree, labelled = tile_agreement(OSM_TILE, DW_TILE, load_agreement_lookup())
    assert (agree, labelled) == (HAND_AGREE, HAND_LABELLED)
    assert agree / labelled == pytest.approx(0.8182, abs=1e-4)


def _grid(i, size=4):
    return GridSpec(crs="EPSG:32632", transform=(10.0, 0.0, 500_000.0 + 100 * i, 0.0, -10.0, 5_000_000.0), height=size, width=size)


TILES = {  # id: (DW split, OSM tile or None, DW tile); OA by hand
    "a": ("train", OSM_TILE, DW_TILE),  # 9/11
    "b": ("train", np.full((4, 4), 8), np.where(np.arange(16).reshape(4, 4) == 5, 1, 0)),  # water vs one tree: 15/16
    "c": ("train", np.zeros((4, 4)), np.full((4, 4), 4)),  # urban fabric vs crops: 0/16
    "d": ("test", np.full((4, 4), 10), np.full((4, 4), 2)),  # 16/16
    "e": ("train", None, np.full((4, 4), 2)),  # no OSM tile: nothing labelled in both
}
HAND_OA = {"a": 9 / 11, "b": 15 / 16, "c": 0.0, "d": 1.0}


@pytest.fixture()
def pair(tmp_path):
    dw = DatasetWriter(tmp_path / "dw", DW.meta(source="synthetic", description="hand-built", layers=("s2", "dw")))
    osm = DatasetWriter(tmp_path / "osm_raw", OSM_LABELS.meta(source="synthetic", description="hand-built", layers=("osm",)))
    for i, (tile, (split, osm_tile, dw_tile)) in enumerate(TILES.items()):
        s2 = np.full((13, 4, 4), 1000 + i, dtype=np.uint16)
        dw.add(tile, split, 1, _grid(i), {"s2": s2, "dw": np.asarray(dw_tile, dtype=np.uint8)[None]})
        if osm_tile is not None:
            osm.add(tile, split, 1, _grid(i), {"osm": np.asarray(osm_tile, dtype=np.uint8)[None]})
    dw.close()
    osm.close()
    return tmp_path


def test_per_tile_oa_and_the_sweep(pair):
    table = agreement_table(PairedTiles.open(pair / "dw", pair / "osm_raw", "label"), load_agreement_lookup())
    oa = dict(zip(table["id"], table["oa"]))
    for tile, value in HAND_OA.items():
        assert oa[tile] == pytest.approx(value)
    assert np.isnan(oa["e"]) and table.set_index("id").loc["e", "labelled"] == 0
    sweep = sweep_table(table, [0.0, 0.8, 0.9, 1.0]).set_index("threshold")
    assert sweep["kept"].tolist() == [4, 3, 2, 1]  # e never passes, not even at θ = 0
    assert sweep.loc[0.8, "kept_dw_train"] == 2 and sweep.loc[0.8, "kept_dw_test"] == 1
    assert sweep.loc[0.9, "mean_oa_kept"] == pytest.approx((15 / 16 + 1) / 2, abs=1e-4)


@pytest.mark.parametrize("scheduler", ["processes", "threads", "synchronous"])
def test_every_scheduler_gives_the_plain_loops_table(pair, scheduler):
    """The dask reduction (forked worker processes by default) and a plain loop over the tiles agree
    row for row, OA included."""
    pairs, allowed = PairedTiles.open(pair / "dw", pair / "osm_raw", "label"), load_agreement_lookup()
    loop = pd.DataFrame([tile_row(pairs, allowed, i) for i in range(len(pairs.dw))])
    table = agreement_table(pairs, allowed, scheduler=scheduler, workers=2)
    pd.testing.assert_frame_equal(table.drop(columns="oa"), loop)
    assert table.set_index("id").loc["a", ["agree", "labelled"]].tolist() == [HAND_AGREE, HAND_LABELLED]


def test_splits_fill_the_test_set_with_passing_dw_train_tiles(pair):
    table = agreement_table(PairedTiles.open(pair / "dw", pair / "osm_raw", "label"), load_agreement_lookup())
    splits = split_tiles(table, 0.8, test_tiles=2, seed=0)
    assert set(splits) == {"a", "b", "d"} and splits["d"] == "test"
    assert sorted(splits.values()) == ["test", "test", "train"]
    with pytest.raises(ValueError, match="too few for 3 test tiles"):
        split_tiles(table, 0.8, test_tiles=3, seed=0)


def test_the_rule_writes_the_osm_dataset_with_padded_moved_tiles(pair):
    out = pair / "out"
    counts = filter_osm(
        dw_dir=pair / "dw", osm_dir=pair / "osm_raw", role="label", out_dir=pair / "osm",
        agreement=out / "agreement.csv", table=out / "t.csv", table_md=out / "t.md", histogram=out / "h.png",
        settings={"threshold": 0.8, "sweep": [0.5, 0.9], "test_tiles": 2, "pad_moved_tiles": True}, seed=0,
    )
    assert counts["kept"] == 3 and counts["tiles"] == 5 and counts["test_from_dw_train"] == 1
    index = DatasetIndex.open(pair / "osm")
    assert index.meta.name == "osm" and set(index.meta.layers) == {"s2", "osm", "dw"}
    assert index.meta.extra["osm_filter"]["threshold"] == 0.8
    table = index.table.set_index("id")
    moved = next(t for t in ("a", "b") if table.loc[t, "split"] == "test")
    kept_train = ({"a", "b"} - {moved}).pop()
    assert int(table.loc[moved, "height"]) == 6 and int(table.loc[kept_train, "height"]) == 4
    moved_row = index.table.index[index.table["id"] == moved][0]
    grid = index.grid(index.table.iloc[moved_row])
    assert grid == pad_grid(_grid(list(TILES).index(moved)), 1)
    assert grid.transform[2] == _grid(list(TILES).index(moved)).transform[2] - 10.0
    from eolabels.data.readers import TileReader

    with TileReader(index, require_all_seasons=False) as reader:
        layers = reader.read(int(moved_row), ["osm", "dw", "s2"])
    assert (layers["osm"][0, 0] == U).all() and (layers["s2"][:, 0] == 0).all()
    np.testing.assert_array_equal(layers["osm"][0, 1:5, 1:5], np.asarray(TILES[moved][1], dtype=np.uint8))
    assert pd.read_csv(out / "t.csv")["threshold"].tolist() == [0.5, 0.8, 0.9]  # θ joins the sweep
    assert (out / "h.png").stat().st_size > 1000


def test_an_osm_tile_off_its_dw_grid_or_unknown_fails_naming_it(pair, tmp_path):
    osm = DatasetWriter(tmp_path / "shifted", OSM_LABELS.meta(source="synthetic", description="", layers=("osm",)))
    osm.add("a", "train", 1, _grid(7), {"osm": OSM_TILE[None]})
    osm.close()
    with pytest.raises(IndexError_, match="OSM tile a lies on another grid"):
        PairedTiles.open(pair / "dw", tmp_path / "shifted", "label")
    other = DatasetWriter(tmp_path / "other", OSM_LABELS.meta(source="synthetic", description="", layers=("osm",)))
    other.add("zz", "train", 1, _grid(0), {"osm": OSM_TILE[None]})
    other.close()
    with pytest.raises(IndexError_, match="OSM tile zz has no DW tile"):
        PairedTiles.open(pair / "dw", tmp_path / "other", "label")
