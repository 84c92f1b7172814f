"""Data card and OSM↔DW filter over many tiles: dask reduction vs a plain per-tile loop.

    python bench/datasets.py [--tiles 2000] [--small 500] [--size 64] [--workers 2] [--repeat 1]

Writes a DW-shaped dataset of ``--tiles`` tiles (S2, S1, DW labels, truth) and the OSM labels on them
(byte copies of 20 generated tiles under new ids), then measures, each in a fresh process: the data card
of the DW tiles and the agreement table of the filter, once as a plain loop over tiles (the same
per-tile work, one tile after another) and once as the dask reduction with ``--workers`` workers on
the processes scheduler (the default) and on the threads scheduler, on ``--small`` tiles and on all of
them. Prints wall time, CPU time (of the measuring process -- the serial share -- and of its workers), peak RSS of the measuring process and of its largest worker process,
and the ratios: speed-up of dask over the loop, and how peak RSS grows from the small to the full count
(the goal: not at all). On a shared machine the speed-up is bounded by the cores other jobs leave free:
the run starts and ends by timing a pure-Python spin in 1 and in ``--workers`` processes, the
best speed-up this run could show. Not a test: nothing is asserted; the numbers go into issue notes.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import pandas as pd

from eolabels.data.index import DatasetIndex, write_index
from eolabels.data.synthetic import generate_dataset

TEMPLATES = 20
SCHEDULERS = ("processes", "threads")
MODES = ("loop", *SCHEDULERS)


def build(root: Path, n_tiles: int, size: int) -> None:
    """The DW tiles and the OSM labels on them, ``n_tiles`` each: byte copies of :data:`TEMPLATES`
    generated tiles under new ids (same grids, so every file still matches its index row)."""
    tiles = {"n_train": TEMPLATES - 5, "n_test": 5, "tile_size": size}
    generate_dataset("dw", root / "template_dw", tiles, seed=0)
    generate_dataset("osm", root / "template_osm", {"dw_tiles": tiles}, seed=0)
    for name in ("dw", "osm"):
        template = DatasetIndex.open(root / f"template_{name}")
        rows = []
        for i in range(n_tiles):
            row = template.table.iloc[i % TEMPLATES].to_dict()
            row["id"] = f"t{i:05d}"
            for layer in template.meta.layers:
                if row[layer]:
                    dst = root / name / "samples" / row["id"] / Path(row[layer]).name
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(template.root / row[layer], dst)
                    row[layer] = dst.relative_to(root / name).as_posix()
            rows.append(row)
        write_index(root / name, template.meta, rows)


def subset(root: Path, name: str, n_tiles: int) -> Path:
    """A dataset directory listing the first ``n_tiles`` tiles of ``root/name`` (absolute paths, no copies)."""
    full = DatasetIndex.open(root / name)
    rows = full.table.head(n_tiles).copy()
    for layer in full.meta.layers:
        rows[layer] = [str((full.root / p).resolve()) if p else "" for p in rows[layer]]
    out = root / f"{name}_{n_tiles}"
    write_index(out, full.meta, rows.to_dict("records"))
    return out


def measure(task: str, mode: str, dw: Path, osm: Path, workers: int) -> dict[str, float]:
    """Run one task in this process (called in a child): seconds and peak RSS (MiB)."""
    from eolabels.data.datacard import CardPlan, dataset_card, merge_stats, tile_stats
    from eolabels.data.osm_filter import PairedTiles, agreement_table, load_agreement_lookup, tile_row

    t0, cpu0 = time.perf_counter(), time.process_time()
    workers0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if task == "card" and mode in SCHEDULERS:
        dataset_card(dw, scheduler=mode, workers=workers)
    elif task == "card":
        index = DatasetIndex.open(dw)
        stats = partial(tile_stats, CardPlan.of(index))
        acc = stats(0)
        for i in range(1, len(index)):
            acc = merge_stats(acc, stats(i))
    elif task == "filter" and mode in SCHEDULERS:
        agreement_table(PairedTiles.open(dw, osm, "label"), load_agreement_lookup(), scheduler=mode, workers=workers)
    elif task == "filter":
        pairs, allowed = PairedTiles.open(dw, osm, "label"), load_agreement_lookup()
        pd.DataFrame([tile_row(pairs, allowed, i) for i in range(len(pairs.dw))])
    else:
        raise ValueError(task)
    seconds = time.perf_counter() - t0
    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    parent_cpu = time.process_time() - cpu0
    worker_cpu = children.ru_utime + children.ru_stime - workers0.ru_utime - workers0.ru_stime
    return {
        "seconds": seconds,
        "cpu_seconds": parent_cpu + worker_cpu,
        "parent_cpu_seconds": parent_cpu,  # the serial share: graph, pickling, merging results in this process
        "worker_cpu_seconds": worker_cpu,
        "peak_rss_mib": me.ru_maxrss / 1024,
        "worker_peak_rss_mib": children.ru_maxrss / 1024,  # the largest worker process (0: none)
    }


def spin(n: int) -> int:
    total = 0
    for i in range(n):
        total += i
    return total


def spin_speedup(workers: int, n: int = 20_000_000) -> float:
    """Pure-Python work in 1 process vs split over ``workers`` processes: what the machine gives now."""
    import multiprocessing

    t0 = time.perf_counter()
    spin(n)
    one = time.perf_counter() - t0
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        t0 = time.perf_counter()
        pool.map(spin, [n // workers] * workers)
        many = time.perf_counter() - t0
    return one / many


def child(task: str, mode: str, dw: Path, osm: Path, workers: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", task, mode, str(dw), str(osm), str(workers)],
        check=True, capture_output=True, text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiles", type=int, default=2000)
    parser.add_argument("--small", type=int, default=500)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=1, help="runs of each measurement; the ratios take the fastest")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        task, mode, dw, osm, workers = args.child
        print(json.dumps(measure(task, mode, Path(dw), Path(osm), int(workers))))
        return
    before = spin_speedup(args.workers)
    print(f"machine    : {args.workers} processes of pure-Python work run {before:.2f}x faster than 1 (before)")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        build(root, args.tiles, args.size)
        print(f"dataset    : {args.tiles} DW tiles of {args.size} px + OSM labels written in {time.perf_counter() - t0:.0f} s")
        sizes = {args.small: (subset(root, "dw", args.small), subset(root, "osm", args.small)), args.tiles: (root / "dw", root / "osm")}
        results = {}
        for task in ("card", "filter"):
            for n, (dw, osm) in sizes.items():
                for rep, mode in ((rep, mode) for rep in range(args.repeat) for mode in MODES):  # modes interleaved
                    r = child(task, mode, dw, osm, args.workers)
                    if rep == 0 or r["seconds"] < results[task, n, mode]["seconds"]:
                        results[task, n, mode] = r
                    print(f"{task:6s} {n:5d} tiles {mode:9s}: {r['seconds']:7.2f} s  cpu {r['cpu_seconds']:7.2f} s "
                          f"(this process {r['parent_cpu_seconds']:6.2f} s, workers {r['worker_cpu_seconds']:6.2f} s)  "
                          f"peak RSS {r['peak_rss_mib']:7.1f} MiB  largest worker {r['worker_peak_rss_mib']:7.1f} MiB")
    after = spin_speedup(args.workers)
    print(f"machine    : {args.workers} processes of pure-Python work run {after:.2f}x faster than 1 (after)")
    print(f"ratios ({args.workers} dask workers; the machine gave pure-Python work {before:.2f}x before, {after:.2f}x after):")
    for task in ("card", "filter"):
        full = {mode: results[task, args.tiles, mode] for mode in MODES}
        small = {mode: results[task, args.small, mode] for mode in MODES}
        for mode in SCHEDULERS:
            grow = full[mode]["peak_rss_mib"] / small[mode]["peak_rss_mib"]
            worker_grow = (full[mode]["worker_peak_rss_mib"] / small[mode]["worker_peak_rss_mib"]
                           if small[mode]["worker_peak_rss_mib"] else float("nan"))
            print(
                f"  {task:6s} {mode:9s}: {full['loop']['seconds'] / full[mode]['seconds']:.2f}x faster than the loop on "
                f"{args.tiles} tiles (cpu {full[mode]['cpu_seconds'] / full['loop']['cpu_seconds']:.2f}x the loop's); "
                f"peak RSS {args.tiles}/{args.small} tiles: {grow:.2f}x, largest worker {worker_grow:.2f}x, loop "
                f"{full['loop']['peak_rss_mib'] / small['loop']['peak_rss_mib']:.2f}x"
            )


if __name__ == "__main__":
    main()
