"""Reader throughput for training, from each released layout against the same pixels in our tiled
GeoTIFFs, printed as ratios in one run; asserts nothing.

    python bench/readers.py [--locations 16] [--repeats 3]

Writes small synthetic downloads (random pixels, the released shapes and dtypes) to a temporary
folder, imports each with its reader, then times reading every sample:
(a) NoL LMDBs (one location = 4 seasons of S2 + S1 + labels): the authors' loader (``txn.get`` +
    ``pickle.loads`` + ``np.frombuffer``), our checked :class:`LmdbReader`, and the imported
    GeoTIFFs through :class:`TileReader` — goal: ours not slower than the authors';
(b) SSL4EO-S12 folders (one location-season = 13 band files at three resolutions, resampled to
    264 px): the folder reader against the imported GeoTIFFs.
"""

from __future__ import annotations

import argparse
import pickle
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import rasterio
from rasterio.transform import Affine

from eolabels.data.index import DatasetIndex
from eolabels.data.kinds import S2_BANDS
from eolabels.data.local import import_local
from eolabels.data.readers import TileReader
from eolabels.data.released.cromss_lmdb import LmdbReader
from eolabels.data.released.ssl4eo_folders import read_bands

GSD = {"B1": 60, "B9": 60, "B10": 60, "B5": 20, "B6": 20, "B7": 20, "B8A": 20, "B11": 20, "B12": 20}


def median_seconds(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median time of each function, taking turns within every repeat (a shared machine slows all alike)."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {n: [] for n in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {n: statistics.median(t) for n, t in times.items()}


def write_nol(root: Path, n: int, rng: np.random.Generator) -> dict:
    import lmdb

    settings = {"format": "cromss_nol_lmdb"}
    for name, shape, high in (("labels", (4, 264, 264), 9), ("s2", (4, 13, 264, 264), 256), ("s1", (4, 2, 264, 264), 256)):
        env = lmdb.open(str(root / f"{name}.lmdb"), map_size=1 << 31)
        with env.begin(write=True) as txn:
            for i in range(n):
                a = rng.integers(0, high, shape, dtype=np.uint8)
                txn.put(str(i).encode(), pickle.dumps((a.tobytes(), a.shape, i)))
        env.close()
        settings[f"{name}_lmdb"] = str(root / f"{name}.lmdb")
    return settings


def write_ssl4eo(root: Path, n: int, rng: np.random.Generator) -> dict:
    subs = ("20200315T1", "20200614T1", "20200913T1", "20201212T1")
    lines = ["ids,sub1,sub2,sub3,sub4"]
    for loc in range(n):
        for sub in subs:
            for band in (*S2_BANDS, "label"):
                gsd = GSD.get(band, 10)
                size = 2640 // gsd
                folder = root / ("labels" if band == "label" else "s2c") / f"{loc:07d}" / sub
                folder.mkdir(parents=True, exist_ok=True)
                data = rng.integers(0, 9, (1, size, size)).astype(np.uint8) if band == "label" else \
                    rng.integers(0, 10000, (1, size, size)).astype(np.uint16)
                with rasterio.open(folder / f"{band}.tif", "w", driver="GTiff", height=size, width=size, count=1,
                                   dtype=data.dtype, crs="EPSG:32618", transform=Affine(gsd, 0, 400000, 0, -gsd, 4200000)) as dst:
                    dst.write(data)
        lines.append(",".join([str(loc), *subs]))
    (root / "ids.csv").write_text("\n".join(lines) + "\n")
    return {"format": "ssl4eo_s12_folders", "s2c_dir": str(root / "s2c"), "labels_dir": str(root / "labels"),
            "ids_csv": str(root / "ids.csv")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--locations", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "nol").mkdir()
        nol = write_nol(tmp / "nol", args.locations, rng)
        import_local("noldo", nol, tmp / "nol_out")
        index = DatasetIndex.open(tmp / "nol_out")
        locations = TileReader(index).locations
        layers = list(index.meta.layers)
        dbs = {k: LmdbReader(nol[f"{k}_lmdb"]) for k in ("labels", "s2", "s1")}

        def authors() -> None:
            for i in range(args.locations):
                for db in dbs.values():
                    with db.env.begin() as txn:
                        raw, shape, _ = pickle.loads(txn.get(str(i).encode()))
                    np.frombuffer(raw, dtype=np.uint8).reshape(shape).copy()

        def ours_lmdb() -> None:
            for i in range(args.locations):
                for db in dbs.values():
                    db.record(str(i), np.uint8, (3, 4), 3)[0].copy()

        def geotiff() -> None:
            with TileReader(index) as reader:
                for loc in locations:
                    reader.read_location(loc, layers)

        t = median_seconds({"authors": authors, "lmdb": ours_lmdb, "geotiff": geotiff}, args.repeats)
        print(f"(a) NoL, {args.locations} locations x 4 seasons (s2, s1, labels):")
        print(f"    authors' LMDB loader {args.locations / t['authors']:8.1f} locations/s")
        print(f"    our LmdbReader       {args.locations / t['lmdb']:8.1f} locations/s  ({t['authors'] / t['lmdb']:.2f}x the authors')")
        print(f"    imported GeoTIFFs    {args.locations / t['geotiff']:8.1f} locations/s  ({t['authors'] / t['geotiff']:.2f}x the authors')")

        (tmp / "ssl4eo").mkdir()
        folders = write_ssl4eo(tmp / "ssl4eo", max(2, args.locations // 4), rng)
        import_local("noldo", folders, tmp / "ssl4eo_out")
        index = DatasetIndex.open(tmp / "ssl4eo_out")
        rows = index.table.to_dict("records")
        s2c = Path(folders["s2c_dir"])
        season_dirs = sorted(p for p in s2c.glob("*/*") if p.is_dir())

        def released() -> None:
            for folder in season_dirs:
                read_bands(folder, S2_BANDS)

        def converted() -> None:
            with TileReader(index) as reader:
                for number in range(len(rows)):
                    reader.read(number, ["s2"])

        t = median_seconds({"released": released, "geotiff": converted}, args.repeats)
        n = len(season_dirs)
        print(f"(b) SSL4EO-S12 folders, {n} location-seasons (13 S2 bands, resampled to 264 px):")
        print(f"    release layout       {n / t['released']:8.1f} samples/s")
        print(f"    imported GeoTIFFs    {n / t['geotiff']:8.1f} samples/s  ({t['released'] / t['geotiff']:.2f}x the release)")


if __name__ == "__main__":
    main()
