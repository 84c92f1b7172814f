"""Lazy access (xarray + dask) and the dask reductions behind the data cards, on every scheduler."""

import os
import sys
import time
from collections import Counter

import dask
import numpy as np
import pytest

from eolabels import open_dataset
from eolabels.data.datacard import dataset_card
from eolabels.data.geotiff import read_geotiff
from eolabels.data.index import DatasetIndex, IndexError_
from eolabels.data.lazy import dask_scheduler, georeferenced, process_start_method, reduce_tiles
from eolabels.data.synthetic import generate_dataset


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    """Three locations, one lacking its label in some season."""
    root = tmp_path_factory.mktemp("lazy") / "noldo_raw"
    generate_dataset("noldo", root, {"n_locations": 3, "tile_size": 16, "incomplete_fraction": 0.34, "missing_label_share": 1.0}, seed=3)
    return root


def test_open_dataset_is_lazy_chunked_per_tile_and_reads_the_files(raw):
    ds = open_dataset(raw)
    index = DatasetIndex.open(raw)
    assert ds["s2"].dims == ("sample", "season", "band_s2", "y", "x")
    assert ds["s2"].shape == (3, 4, 13, 16, 16) and ds["dw"].shape == (3, 4, 1, 16, 16)
    assert ds["s2"].data.chunks[:2] == ((1, 1, 1), (1, 1, 1, 1))  # one chunk per tile
    assert list(ds["season"].values) == ["spring", "summer", "autumn", "winter"]
    assert ds["s2"].sel(band_s2="B8A").shape == (3, 4, 16, 16)
    assert str(ds.rio.crs) == "EPSG:32632"
    for number, row in index.table.iterrows():
        k = list(ds["sample"].values).index(row["id"])
        got = ds["dw"].isel(sample=k, season=int(row["season"])).values
        if row["dw"]:
            np.testing.assert_array_equal(got, read_geotiff(raw / row["dw"])[0])
        else:
            assert (got == 255).all()  # a missing label is filled with the layer's nodata
    assert (index.table["dw"] == "").any()


def test_a_tile_carries_its_georeference(raw):
    ds = open_dataset(raw, layers=["s1"])
    index = DatasetIndex.open(raw)
    row = index.table.iloc[4]
    tile = georeferenced(ds, "s1", row["id"], int(row["season"]))
    assert tile.dims == ("band", "y", "x") and str(tile.rio.crs) == "EPSG:32632"
    assert tile.rio.bounds() == pytest.approx((row["left"], row["bottom"], row["right"], row["top"]))
    np.testing.assert_array_equal(tile.values, read_geotiff(raw / row["s1"])[0])


def test_tiles_of_different_sizes_need_a_split(tmp_path):
    generate_dataset("dw", tmp_path / "dw", {"n_train": 1, "n_test": 1, "tile_size": 16}, seed=0)
    index = DatasetIndex.open(tmp_path / "dw")
    index.table.loc[1, ["height", "width"]] = 17
    index.table.to_csv(tmp_path / "dw" / "index.csv", index=False)
    with pytest.raises(IndexError_, match=r"tiles of sizes \[\(16, 16\), \(17, 17\)\] cannot share y/x"):
        open_dataset(tmp_path / "dw")
    assert open_dataset(tmp_path / "dw", split="train")["dw"].shape == (1, 1, 1, 16, 16)


def _square(i):
    return i * i


def _add(a, b):
    return a + b


@pytest.mark.parametrize("scheduler", ["threads", "synchronous", "processes"])
def test_reduce_tiles_folds_every_tile_once(scheduler):
    assert reduce_tiles(_square, _add, 50, scheduler=scheduler, workers=2) == sum(i * i for i in range(50))


def _tile_by_worker(i):
    time.sleep(0.02)  # waits, not computes: both workers progress alike however busy the machine is
    return Counter({os.getpid(): 1})


def test_processes_share_the_tiles_evenly():
    """64 tiles in 8 partitions of 8 on 2 workers: each worker takes a partition when it is free,
    so neither does more than 5 of them (dask's default batching gave one worker 6, 48 tiles)."""
    by_worker = reduce_tiles(_tile_by_worker, _add, 64, scheduler="processes", workers=2)
    assert sum(by_worker.values()) == 64 and len(by_worker) == 2 and os.getpid() not in by_worker
    assert max(by_worker.values()) <= 40, by_worker


def test_processes_are_forked_on_linux():
    with dask_scheduler("processes", 2):
        assert dask.config.get("multiprocessing.context") == process_start_method()
    assert process_start_method() == "fork" or not sys.platform.startswith("linux")


def test_the_card_is_the_same_on_every_local_scheduler(raw):
    assert dataset_card(raw, scheduler="processes", workers=2) == dataset_card(raw, scheduler="synchronous")


def test_a_bad_scheduler_is_named():
    with pytest.raises(ValueError, match="dask scheduler 'thread'"):
        with dask_scheduler("thread"):
            pass


@pytest.mark.slow
def test_the_card_on_a_distributed_scheduler_equals_the_threads_card(raw):
    distributed = pytest.importorskip("distributed", reason="dask.distributed not installed (pip install distributed)")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster:
        remote = dataset_card(raw, scheduler=cluster.scheduler_address)
    assert remote == dataset_card(raw, scheduler="threads") == dataset_card(raw, scheduler="synchronous")
