"""Sharding a sheet into jobs, running one shard, and merging the shards into one dataset.

A location's shard is a hash of its id, not its row number, so appending rows to a sheet leaves every
existing location in its shard (their finished work is kept). The merge writes the common layout
(``dataset.json`` + ``index.csv`` + GeoTIFFs) through :class:`~eolabels.data.writer.DatasetWriter`, the
same as the synthetic and local sources.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from eolabels.acquisition.manifest import DONE, FAILED, Acquired, Manifest, write_summary
from eolabels.acquisition.pool import LocationFailed, run_pool
from eolabels.acquisition.sheets import DwTile, Location
from eolabels.atomic import atomic_path, remove_stale_temporaries
from eolabels.data.index import DatasetMeta, write_index

log = logging.getLogger(__name__)
MANIFEST_JOURNAL = "manifest.jsonl"
Site = Location | DwTile
Acquire = Callable[[Site, Path], Acquired]


def shard_of(location_id: str, n_shards: int) -> int:
    """The shard (0 … n−1) of a location id: stable across runs, machines and sheet edits."""
    return int.from_bytes(hashlib.sha1(location_id.encode()).digest()[:8], "big") % n_shards


def shard_locations(locations: Sequence[Site], shard: int, n_shards: int) -> list[Site]:
    if not 0 <= shard < n_shards:
        raise ValueError(f"shard {shard} is not in 0..{n_shards - 1}")
    return [loc for loc in locations if shard_of(loc.id, n_shards) == shard]


def run_shard(locations: Sequence[Site], acquire: Acquire, shard_dir: str | os.PathLike[str],
              summary: str | os.PathLike[str], workers: int) -> pd.DataFrame:
    """Acquire every location of a shard not yet done, ``workers`` at a time; write the summary CSV.

    A location's failure (its message names it) is recorded in the manifest and the others go on;
    a rerun skips the done ones and retries the rest.
    """
    shard_dir = Path(shard_dir)
    for stale in remove_stale_temporaries(shard_dir):  # the job owns its shard folder
        log.info("removed %s, left by a killed run", stale)
    manifest = Manifest(shard_dir / MANIFEST_JOURNAL)
    done = manifest.done()
    todo = [loc for loc in locations if loc.id not in done]
    log.info("shard %s: %d locations, %d done before, %d to fetch", shard_dir.name, len(locations), len(done), len(todo))
    for loc, result, err in run_pool(todo, lambda loc: acquire(loc, shard_dir), workers):
        if err is None:
            manifest.add(loc.id, DONE, seasons=result.seasons, missing=result.missing, rows=result.rows)
        elif isinstance(err, LocationFailed):
            log.warning("%s", err)
            manifest.add(loc.id, FAILED, reason=str(err))
        else:
            log.error("location %s: unexpected %s: %s", loc.id, type(err).__name__, err)
            manifest.add(loc.id, FAILED, reason=f"location {loc.id}: {type(err).__name__}: {err}")
    table = write_summary(manifest, [loc.id for loc in locations], summary)
    counts = table["status"].value_counts().to_dict()
    log.info("shard %s: %s", shard_dir.name, counts)
    return table


def link_or_copy(src: Path, dst: Path) -> None:
    """Put a shard's finished file into the dataset: a hard link (no bytes copied) where the file
    system allows, else an atomic copy."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        dst.unlink()
    try:
        os.link(src, dst)
    except OSError:
        with atomic_path(dst) as tmp:
            shutil.copyfile(src, tmp)


def merge_shards(locations: Sequence[Site], shard_dirs: Sequence[str | os.PathLike[str]], meta: DatasetMeta,
                 out_dir: str | os.PathLike[str]) -> dict[str, int]:
    """The dataset of every done location, with the seasons it has: a location lacking some is kept
    (counted ``incomplete``) so that the NoLDO-S12 assembly downstream drops it and says why.

    The shards wrote each location through :class:`~eolabels.data.writer.DatasetWriter` in the
    dataset's own layout and kept its index rows in the manifest, so merging links the files and
    writes one index: no raster is decoded again. Returns counts for the log.
    """
    by_id = {loc.id: loc for loc in locations}
    out_dir = Path(out_dir)
    for stale in remove_stale_temporaries(out_dir):  # the merge job owns its dataset folder
        log.info("removed %s, left by a killed run", stale)
    rows: list[dict] = []
    counts = {"written": 0, "incomplete": 0, "failed": 0}  # incomplete: written, with fewer seasons
    for shard_dir in map(Path, shard_dirs):
        for location_id, rec in sorted(Manifest(shard_dir / MANIFEST_JOURNAL).records().items()):
            if location_id not in by_id:
                continue  # a location since removed from the sheet
            if rec["status"] != DONE:
                counts["failed"] += 1
                continue
            if len(rec["seasons"]) < len(meta.seasons):
                counts["incomplete"] += 1
            for row in rec["rows"]:
                for name in meta.layers:
                    if row.get(name):
                        link_or_copy(shard_dir / row[name], out_dir / row[name])
                rows.append({**row, "split": by_id[location_id].split})
            counts["written"] += 1
    if not rows:
        raise LocationFailed(f"{out_dir}: no location was acquired in full ({counts}); see the shards' manifests")
    write_index(out_dir, meta, rows)
    return counts
