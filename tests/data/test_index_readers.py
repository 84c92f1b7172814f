"""Dataset index contract and the two readers (lazy xarray, random windows)."""

import numpy as np
import pandas as pd
import pytest

from eolabels.data.geotiff import GridSpec, RasterError, read_geotiff, write_geotiff
from eolabels.data.index import DatasetIndex, DatasetMeta, IndexError_, LayerSpec, grid_columns, write_index
from eolabels.data.readers import WindowReader, open_lazy, open_stack

GRID = GridSpec(crs="EPSG:32632", transform=(10.0, 0.0, 0.0, 0.0, -10.0, 1000.0), height=32, width=32)
META = DatasetMeta(
    name="toy", source="test",
    layers={
        "s2": LayerSpec(bands=("B2", "B3", "B4"), dtype="float32", role="image", modality="s2"),
        "dw": LayerSpec(bands=("dw_label",), dtype="uint8", role="label", schema="dw", nodata=255),
    },
)


def make_dataset(root, n=3, image=None, label=None):
    rows = []
    for i in range(n):
        rng = np.random.default_rng(i)
        img = rng.normal(size=(3, 32, 32)).astype(np.float32) if image is None else image
        lab = rng.integers(0, 9, size=(32, 32)).astype(np.uint8) if label is None else label
        write_geotiff(root / f"s{i}" / "s2.tif", img, GRID, META.layers["s2"].bands)
        write_geotiff(root / f"s{i}" / "dw.tif", lab, GRID, ("dw_label",), nodata=255)
        rows.append({"id": f"s{i}", "split": "train" if i else "test", "season": 0, **grid_columns(GRID),
                     "s2": f"s{i}/s2.tif", "dw": f"s{i}/dw.tif"})
    write_index(root, META, rows)
    return DatasetIndex.open(root)


def test_index_round_trip_and_paths(tmp_path):
    ix = make_dataset(tmp_path)
    assert len(ix) == 3
    row = ix.table.iloc[1]
    assert ix.grid(row) == GRID
    assert ix.path(row, "dw") == tmp_path / "s1" / "dw.tif"
    assert [r["id"] for r in ix.rows(split="train")] == ["s1", "s2"]
    assert ix.meta.layers["s2"].bands == ("B2", "B3", "B4")
    with pytest.raises(IndexError_, match="no layer 'osm'"):
        ix.path(row, "osm")


def test_empty_or_broken_index_fails_fast(tmp_path):
    with pytest.raises(IndexError_, match="empty index"):
        write_index(tmp_path, META, [])
    with pytest.raises(IndexError_, match="missing"):
        DatasetIndex.open(tmp_path / "nowhere")
    make_dataset(tmp_path)
    t = pd.read_csv(tmp_path / "index.csv")
    t.iloc[:0].to_csv(tmp_path / "index.csv", index=False)
    with pytest.raises(IndexError_, match="no samples"):
        DatasetIndex.open(tmp_path)
    t.drop(columns=["dw"]).to_csv(tmp_path / "index.csv", index=False)
    with pytest.raises(IndexError_, match=r"missing columns \['dw'\]"):
        DatasetIndex.open(tmp_path)


def test_window_reader_matches_full_read(tmp_path):
    ix = make_dataset(tmp_path)
    full = read_geotiff(tmp_path / "s2" / "s2.tif")[0]
    with WindowReader(ix) as reader:
        out = reader.read(2, ["s2", "dw"], top=5, left=9, size=16)
        np.testing.assert_array_equal(out["s2"], full[:, 5:21, 9:25])
        assert out["dw"].shape == (1, 16, 16)
        row, crop = reader.random(np.random.default_rng(0), ["s2"], 8)
        assert crop["s2"].shape == (3, 8, 8) and 0 <= row < 3
        with pytest.raises(RasterError, match="outside"):
            reader.read(0, ["s2"], top=30, left=0, size=8)
        with pytest.raises(RasterError, match="crop 64 larger"):
            reader.random(np.random.default_rng(0), ["s2"], 64)


def test_reader_rejects_nan_bad_labels_and_drifted_files(tmp_path):
    img = np.zeros((3, 32, 32), np.float32)
    ix = make_dataset(tmp_path / "a", n=1, image=img)
    # NaN cannot be written through write_geotiff, so corrupt the file in place with rasterio
    import rasterio
    with rasterio.open(tmp_path / "a" / "s0" / "s2.tif", "r+") as ds:
        bad = img.copy()
        bad[1, 2, 3] = np.nan
        ds.write(bad)
    with WindowReader(ix) as reader, pytest.raises(RasterError, match=r"s2.tif.*1 NaN"):
        reader.read(0, ["s2"], 0, 0, 8)
    lab = np.zeros((32, 32), np.uint8)
    lab[4, 4] = 42
    ix = make_dataset(tmp_path / "b", n=1, label=lab)
    with WindowReader(ix) as reader, pytest.raises(ValueError, match="42"):
        reader.read(0, ["dw"], 0, 0, 8)
    ix = make_dataset(tmp_path / "c", n=1)
    other = GridSpec("EPSG:4326", GRID.transform, 32, 32)
    write_geotiff(tmp_path / "c" / "s0" / "dw.tif", lab, other, ("dw_label",))
    with WindowReader(ix) as reader, pytest.raises(RasterError, match=r"dw.tif: CRS"):
        reader.read(0, ["dw"], 0, 0, 8)


def test_lazy_reader_is_dask_backed_and_named(tmp_path):
    ix = make_dataset(tmp_path)
    arr = open_lazy(ix, "s2", 0, chunks=16)
    assert arr.chunks is not None
    assert list(arr.band.values) == ["B2", "B3", "B4"]
    assert arr.rio.crs.to_epsg() == 32632
    np.testing.assert_allclose(arr.values, read_geotiff(tmp_path / "s0" / "s2.tif")[0])
    stack = open_stack(ix, "dw", split="train")
    assert stack.sizes["sample"] == 2 and stack.shape[1:] == (1, 32, 32)


def make_seasonal(root, seasons=(0, 1, 2, 3), s1_grid=GRID):
    meta = DatasetMeta(
        name="seasonal", source="test", seasons=("spring", "summer", "autumn", "winter"),
        layers={"s2": META.layers["s2"], "s1": LayerSpec(bands=("VV", "VH"), dtype="float32", role="image", modality="s1"),
                "dw": META.layers["dw"]},
    )
    rows = []
    for s in seasons:
        base = root / "loc0" / str(s)
        write_geotiff(base / "s2.tif", np.full((3, 32, 32), s, np.float32), GRID, ("B2", "B3", "B4"))
        write_geotiff(base / "s1.tif", np.full((2, 32, 32), -s, np.float32), s1_grid, ("VV", "VH"))
        write_geotiff(base / "dw.tif", np.full((32, 32), s, np.uint8), GRID, ("dw_label",))
        rows.append({"id": "loc0", "split": "train", "season": s, **grid_columns(GRID),
                     "s2": f"loc0/{s}/s2.tif", "s1": f"loc0/{s}/s1.tif", "dw": f"loc0/{s}/dw.tif"})
    write_index(root, meta, rows[::-1])  # index order must not matter
    return DatasetIndex.open(root)


def test_tile_reader_stacks_a_locations_seasons_in_order(tmp_path):
    from eolabels.data.readers import TileReader

    reader = TileReader(make_seasonal(tmp_path))
    out = reader.read_location("loc0", ["s2", "s1", "dw"])
    assert out["s2"].shape == (4, 3, 32, 32) and out["dw"].shape == (4, 1, 32, 32)
    assert out["s2"][:, 0, 0, 0].tolist() == [0, 1, 2, 3] and out["s1"][:, 1, 5, 5].tolist() == [0, -1, -2, -3]
    reader.close()


def test_tile_reader_names_missing_season_and_mismatched_modality(tmp_path):
    from eolabels.data.readers import TileReader

    with pytest.raises(RasterError, match=r"loc0 is missing season\(s\) \['autumn'\]"):
        TileReader(make_seasonal(tmp_path / "a", seasons=(0, 1, 3))).locations
    shifted = GridSpec(GRID.crs, (20.0, 0.0, 0.0, 0.0, -20.0, 1000.0), 32, 32)
    reader = TileReader(make_seasonal(tmp_path / "b", s1_grid=shifted))
    with pytest.raises(RasterError, match=r"s1.tif: transform"):
        reader.read_location("loc0", ["s2", "s1"])
