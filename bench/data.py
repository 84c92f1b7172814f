"""Benchmarks of the data layer; prints throughputs and ratios against baselines measured in the same run.

    python bench/data.py [--tiles 8] [--crops 200]

1. Synthetic world generation (NoLDO-shaped locations/s, 4 seasons of S1+S2+labels each), against
   the baseline of only writing the same number of rasters with plain rasterio (no generation).
2. Training window reader: random 13x256x256 crops/s from 512x512 tiled GeoTIFFs via WindowReader,
   against a plain full-file rasterio read followed by slicing.
Not a test: nothing is asserted; the numbers go into issue notes.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio

from eolabels.data.geotiff import GridSpec, write_geotiff
from eolabels.data.index import DatasetIndex, DatasetMeta, grid_columns, write_index
from eolabels.data.readers import WindowReader
from eolabels.data.kinds import S2, S2_BANDS
from eolabels.data.synthetic import generate_dataset


def bench_generation(root: Path, n: int) -> None:
    section = {"incomplete_fraction": 0.0, "n_locations": n, "tile_size": 96}
    t0 = time.perf_counter()
    generate_dataset("noldo", root / "noldo", section, seed=0)
    gen = time.perf_counter() - t0
    # baseline: write the same rasters (13+2+1+1 bands x 4 seasons per location) without generating
    grid = GridSpec("EPSG:32632", (10.0, 0.0, 0.0, 0.0, -10.0, 0.0), 96, 96)
    arrays = [np.zeros((13, 96, 96), np.uint16), np.zeros((2, 96, 96), np.float32), np.zeros((1, 96, 96), np.uint8)]
    t0 = time.perf_counter()
    for i in range(n * 4):
        for k, a in enumerate(arrays + arrays[2:]):
            with rasterio.open(root / f"plain_{i}_{k}.tif", "w", driver="GTiff", height=96, width=96,
                               count=a.shape[0], dtype=a.dtype.name, crs=grid.crs, transform=grid.affine) as dst:
                dst.write(a)
    plain = time.perf_counter() - t0
    print(f"generation : {n / gen:8.2f} locations/s ({4 * n / gen:.1f} tiles/s incl. 4 seasons)")
    print(f"  baseline : {n / plain:8.2f} locations/s (plain rasterio writes only)")
    print(f"  ratio    : generation takes {gen / plain:.1f}x the time of just writing the files")


def bench_reader(root: Path, crops: int) -> None:
    grid = GridSpec("EPSG:32632", (10.0, 0.0, 0.0, 0.0, -10.0, 0.0), 512, 512)
    rng = np.random.default_rng(0)
    meta = DatasetMeta(name="bench", source="bench", layers={"s2": S2})
    rows = []
    for i in range(4):
        data = rng.integers(500, 4000, size=(13, 512, 512), dtype=np.uint16)
        write_geotiff(root / "reader" / f"t{i}.tif", data, grid, S2_BANDS)
        rows.append({"id": f"t{i}", "split": "train", "season": 0, **grid_columns(grid), "s2": f"t{i}.tif"})
    write_index(root / "reader", meta, rows)
    index = DatasetIndex.open(root / "reader")
    with WindowReader(index) as reader:
        reader.random(rng, ["s2"], 256)  # open files once, as a long-running loader would
        t0 = time.perf_counter()
        for _ in range(crops):
            reader.random(rng, ["s2"], 256)
        windowed = crops / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for _ in range(crops):
        i = int(rng.integers(4))
        with rasterio.open(root / "reader" / f"t{i}.tif") as ds:
            full = ds.read()
        y, x = rng.integers(0, 257, size=2)
        _ = full[:, y : y + 256, x : x + 256]
    plain = crops / (time.perf_counter() - t0)
    print(f"reader     : {windowed:8.1f} crops/s (13x256x256 uint16 random windows, WindowReader)")
    print(f"  baseline : {plain:8.1f} crops/s (plain full-file rasterio read + slice)")
    print(f"  ratio    : {windowed / plain:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiles", type=int, default=8, help="locations to generate")
    parser.add_argument("--crops", type=int, default=200, help="random crops to read")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        bench_generation(Path(tmp), args.tiles)
        bench_reader(Path(tmp), args.crops)


if __name__ == "__main__":
    main()
