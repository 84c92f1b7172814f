"""Benchmark of the Earth Engine acquisition path (replay transport, simulated latency); prints
throughputs and ratios against baselines measured in the same run.

    python bench/acquisition.py [--latency 0.3] [--per-worker 2] [--tile 32]

1. NoLDO-S12 locations/s against worker count (1, 4, 16, 64), unlimited and with a requests-per-minute
   limit: the efficiency column is throughput / (workers × the 1-worker throughput); with a limit the
   ceiling is limit / requests per location.
2. Memory per worker: tracemalloc peak of a 16-worker run minus a 1-worker run, over 15.
3. Merge cost: one shard's merge into the common layout, against the shard's acquisition time.
Everything runs through the real earthengine-api (offline, algorithm signatures from its wheel); only
the transport replays constructed GeoTIFFs after sleeping ``latency`` s. Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
from rasterio.io import MemoryFile

from eolabels.acquisition import earthengine as eeq
from eolabels.acquisition.client import EarthEngineClient
from eolabels.acquisition.noldo import NoldoSettings, acquire_location, location_grid, noldo_meta, season_window
from eolabels.acquisition.pool import Backoff, RateLimiter
from eolabels.acquisition.shards import merge_shards, run_shard
from eolabels.acquisition.sheets import Location
from eolabels.acquisition.transport import ReplayHttp, ResponseStore, compute_body
from eolabels.data.geotiff import GridSpec

PRODUCT = "20210701T155819_20210701T160611_T18SVG"
S1_PRODUCT = "S1A_IW_GRDH_1SDV_20210702T230000_20210702T230025_038500_048C00_BBBB"
REQUESTS_PER_LOCATION = 4 * 5  # per season: pairing query, S1 query, S2 + DW + S1 pixels


def tiff(data: np.ndarray, grid: GridSpec) -> bytes:
    with MemoryFile() as mem:
        with mem.open(driver="GTiff", height=grid.height, width=grid.width, count=data.shape[0], dtype=data.dtype.name,
                      crs=grid.crs, transform=grid.affine) as ds:
            ds.write(data)
        return bytes(mem.read())


def register(store: ResponseStore, loc: Location, cfg: NoldoSettings, rng: np.random.Generator) -> None:
    """Constructed responses for one location, keyed by the requests the real client will send."""
    grid = location_grid(loc, cfg)
    s2 = tiff(rng.integers(0, 10000, (13, grid.height, grid.width), dtype=np.uint16), grid)
    dw = tiff(rng.integers(0, 9, (1, grid.height, grid.width), dtype=np.uint8), grid)
    s1 = tiff(rng.normal(-15, 5, (2, grid.height, grid.width)).astype(np.float32), grid)

    def value(expression, result):
        store.put("value:compute", compute_body({"expression": expression}), 200, json.dumps({"result": result}).encode())

    def pixels(expression, content):
        store.put("image:computePixels", compute_body(eeq.pixels_request(expression, grid)), 200, content)

    for start, end in cfg.season_windows.values():
        window = season_window(cfg.year, start, end)
        value(eeq.noldo_pairing(loc.lon, loc.lat, window, cfg.cloud_max), {"s2_count": 3, "best": [[PRODUCT, 1.0, 1625140800000]]})
        value(eeq.s1_nearest(loc.lon, loc.lat, 1625140800000, cfg.s1_max_days), {"list": [[S1_PRODUCT, 3600000]]})
    pixels(eeq.s2_pixels(PRODUCT, cfg.resample), s2)
    pixels(eeq.dw_pixels(PRODUCT), dw)
    pixels(eeq.s1_pixels(S1_PRODUCT, cfg.resample), s1)


def run(locations, cfg, root: Path, workers: int, per_minute: float) -> float:
    client = EarthEngineClient(RateLimiter(per_minute), Backoff(base=0.01, attempts=2))
    t0 = time.perf_counter()
    table = run_shard(locations, lambda loc, d: acquire_location(client, loc, cfg, d), root, root.with_suffix(".csv"), workers)
    elapsed = time.perf_counter() - t0
    assert (table["status"] == "done").all(), table[table["status"] != "done"]["reason"].tolist()[:3]
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.3)
    parser.add_argument("--per-worker", type=int, default=2, help="locations per worker in each run")
    parser.add_argument("--tile", type=int, default=32, help="tile side (px); 264 in NoLDO-S12")
    parser.add_argument("--limit", type=float, default=1200, help="requests per minute of the limited runs")
    parser.add_argument("--only", nargs="+", choices=("throughput", "memory", "merge"),
                        default=("throughput", "memory", "merge"))
    args = parser.parse_args()
    cfg = NoldoSettings(tile_size=args.tile)
    worker_counts = (1, 4, 16, 64)
    n_max = max(worker_counts) * args.per_worker if "throughput" in args.only else 32
    rng = np.random.default_rng(0)
    locations = [Location(f"l{i:04d}", -75.9 + 0.001 * i, 37.5 + 0.0007 * (i % 97)) for i in range(n_max)]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        store = ResponseStore(tmp / "responses")
        eeq.initialize_offline(ReplayHttp(store, latency=args.latency))
        t0 = time.perf_counter()
        for loc in locations:
            register(store, loc, cfg, rng)
        print(f"constructed {n_max} locations' responses in {time.perf_counter() - t0:.1f} s "
              f"({REQUESTS_PER_LOCATION} requests each, {args.latency * 1000:.0f} ms simulated latency)")
        if "throughput" in args.only:
            throughput(locations, cfg, tmp, worker_counts, args)
        if "memory" in args.only:
            memory(locations, cfg, tmp, args)
        if "merge" in args.only:
            merge(locations, cfg, tmp)


def throughput(locations, cfg, tmp, worker_counts, args) -> None:
    print("\n1. throughput (locations/s) vs workers")
    print(f"{'workers':>8} {'limit/min':>10} {'loc/s':>8} {'req/s':>8} {'efficiency':>11} {'ceiling loc/s':>14}")
    base = None
    for per_minute in (1e9, args.limit):
        for workers in worker_counts:
            subset = locations[: workers * args.per_worker]
            elapsed = run(subset, cfg, tmp / f"run_{workers}_{int(per_minute)}", workers, per_minute)
            rate = len(subset) / elapsed
            base = base or rate
            ceiling = per_minute / 60 / REQUESTS_PER_LOCATION
            print(f"{workers:>8} {('none' if per_minute >= 1e9 else f'{per_minute:.0f}'):>10} {rate:>8.3f} "
                  f"{rate * REQUESTS_PER_LOCATION:>8.1f} {rate / (workers * base):>10.0%} "
                  f"{('-' if per_minute >= 1e9 else f'{ceiling:.3f}'):>14}")


def memory(locations, cfg, tmp, args) -> None:
    print("\n2. memory per worker (tracemalloc peaks, same locations)")
    peaks = {}
    for workers in (1, 16):
        tracemalloc.start()
        run(locations[:16], cfg, tmp / f"mem_{workers}", workers, 1e9)
        peaks[workers] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    per_worker = (peaks[16] - peaks[1]) / 15
    print(f"peak 1 worker {peaks[1] / 2**20:.1f} MiB, 16 workers {peaks[16] / 2**20:.1f} MiB: "
          f"{per_worker / 2**20:.2f} MiB per extra worker at {args.tile}x{args.tile} px "
          f"(one {args.tile}px season's pixels: {args.tile**2 * (13 * 2 + 2 * 4 + 1) / 2**20:.2f} MiB)")


def merge(locations, cfg, tmp) -> None:
    print("\n3. merge cost of one shard")
    acq = run(locations[:32], cfg, tmp / "merge_src", 16, 1e9)
    t0 = time.perf_counter()
    merge_shards(locations[:32], [tmp / "merge_src"], noldo_meta(), tmp / "merged")
    seconds = time.perf_counter() - t0
    print(f"merge of 32 locations × 4 seasons: {seconds:.2f} s ({seconds / 32 * 1000:.1f} ms per location); "
          f"acquiring them with 16 workers took {acq:.2f} s: merge / acquisition = {seconds / acq:.3f}")


if __name__ == "__main__":
    main()
