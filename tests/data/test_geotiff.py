"""GeoTIFF round trips, atomic writes and the errors a user sees for broken rasters."""

import numpy as np
import pytest
import rasterio

from eolabels.atomic import atomic_path
from eolabels.data.geotiff import GridSpec, RasterError, read_geotiff, write_geotiff

GRID = GridSpec(crs="EPSG:32632", transform=(10.0, 0.0, 300000.0, 0.0, -10.0, 5000000.0), height=40, width=30)


def test_round_trip_keeps_crs_transform_descriptions_nodata_colormap(tmp_path):
    data = np.arange(2 * 40 * 30, dtype=np.uint16).reshape(2, 40, 30)
    path = write_geotiff(tmp_path / "a.tif", data, GRID, ("B4", "B8"), nodata=0, colormap=None)
    out, grid, desc = read_geotiff(path)
    np.testing.assert_array_equal(out, data)
    assert grid == GRID
    assert desc == ("B4", "B8")
    assert grid.bounds == (300000.0, 4999600.0, 300300.0, 5000000.0)
    labels = np.zeros((40, 30), np.uint8)
    write_geotiff(tmp_path / "l.tif", labels, GRID, ("label",), nodata=255, colormap={0: (255, 0, 0)})
    with rasterio.open(tmp_path / "l.tif") as ds:
        assert ds.nodata == 255
        assert ds.colormap(1)[0][:3] == (255, 0, 0)
        assert ds.compression.name.lower() == "deflate"


def test_large_rasters_are_tiled(tmp_path):
    grid = GridSpec(GRID.crs, GRID.transform, 256, 512)
    write_geotiff(tmp_path / "t.tif", np.zeros((1, 256, 512), np.float32), grid, ("x",))
    with rasterio.open(tmp_path / "t.tif") as ds:
        assert ds.block_shapes[0] == (256, 256)


def test_window_and_band_subset(tmp_path):
    data = np.random.default_rng(0).normal(size=(3, 40, 30)).astype(np.float32)
    write_geotiff(tmp_path / "a.tif", data, GRID, ("a", "b", "c"))
    out, _, desc = read_geotiff(tmp_path / "a.tif", window=rasterio.windows.Window(5, 7, 10, 12), bands=[2, 0])
    np.testing.assert_array_equal(out, data[[2, 0], 7:19, 5:15])
    assert desc == ("c", "a")


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "x.txt"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_refuses_nan_imagery_and_wrong_shapes(tmp_path):
    bad = np.zeros((1, 40, 30), np.float32)
    bad[0, 3, 4] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        write_geotiff(tmp_path / "n.tif", bad, GRID, ("x",))
    assert not (tmp_path / "n.tif").exists()
    with pytest.raises(ValueError, match="descriptions"):
        write_geotiff(tmp_path / "d.tif", np.zeros((2, 40, 30)), GRID, ("x",))
    with pytest.raises(ValueError, match="grid is 40x30"):
        write_geotiff(tmp_path / "s.tif", np.zeros((1, 4, 3)), GRID, ("x",))


def test_corrupt_and_truncated_files_name_the_file(tmp_path):
    junk = tmp_path / "junk.tif"
    junk.write_bytes(b"not a tiff at all")
    with pytest.raises(RasterError, match="junk.tif"):
        read_geotiff(junk)
    data = np.random.default_rng(1).integers(0, 60000, size=(13, 256, 256), dtype=np.uint16)
    good = write_geotiff(tmp_path / "good.tif", data, GridSpec(GRID.crs, GRID.transform, 256, 256), tuple(f"B{i}" for i in range(13)))
    cut = tmp_path / "cut.tif"
    raw = good.read_bytes()
    cut.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(RasterError, match="cut.tif"):
        read_geotiff(cut)
    with pytest.raises(RasterError, match="does not exist"):
        read_geotiff(tmp_path / "missing.tif")


def test_expectations_from_the_index_are_checked(tmp_path):
    path = write_geotiff(tmp_path / "a.tif", np.zeros((2, 40, 30), np.uint8), GRID, ("a", "b"))
    with pytest.raises(RasterError, match="band"):
        read_geotiff(path, expect=GRID, expect_count=3)
    other_crs = GridSpec("EPSG:4326", GRID.transform, 40, 30)
    with pytest.raises(RasterError, match="CRS"):
        read_geotiff(path, expect=other_crs)
    shifted = GridSpec(GRID.crs, (10.0, 0.0, 300010.0, 0.0, -10.0, 5000000.0), 40, 30)
    with pytest.raises(RasterError, match="transform"):
        read_geotiff(path, expect=shifted)
    with pytest.raises(RasterError, match="shape"):
        read_geotiff(path, expect=GridSpec(GRID.crs, GRID.transform, 41, 30))


def test_pixel_grid_without_crs_round_trips(tmp_path):
    import warnings

    grid = GridSpec(crs="", transform=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0), height=8, width=8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        write_geotiff(tmp_path / "p.tif", np.ones((1, 8, 8), np.uint8), grid, ("x",))
    _, back, _ = read_geotiff(tmp_path / "p.tif", expect=grid)
    assert back.crs == "" and back.transform == grid.transform


def test_atomic_outputs_respect_the_umask(tmp_path):
    import os

    old = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "shared.txt") as tmp:
            tmp.write_text("x")
    finally:
        os.umask(old)
    assert (tmp_path / "shared.txt").stat().st_mode & 0o777 == 0o644
