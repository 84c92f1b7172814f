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
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from eolabels.acquisition.manifest import DONE, FAILED, Manifest, write_summary
from eolabels.acquisition.pool import LocationFailed, run_pool
from eolabels.acquisition.sheets import DwTile, Location
from eolabels.data.geotiff import read_geotiff
from eolabels.data.index import DatasetMeta
from eolabels.data.writer import DatasetWriter

log = logging.getLogger(__name__)
MANIFEST_JOURNAL = "manifest.jsonl"
Site = Location | DwTile
Acquire = Callable[[Site, Path], tuple[list[str], dict[str, str]]]


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
    manifest = Manifest(shard_dir / MANIFEST_JOURNAL)
    done = manifest.done()
    todo = [loc for loc in locations if loc.id not in done]
    log.info("shard %s: %d locations, %d done before, %d to fetch", shard_dir.name, len(locations), len(done), len(todo))
    for loc, result, err in run_pool(todo, lambda loc: acquire(loc, shard_dir), workers):
        if err is None:
            seasons, missing = result
            manifest.add(loc.id, DONE, seasons=seasons, missing=missing)
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


def merge_shards(locations: Sequence[Site], shard_dirs: Sequence[str | os.PathLike[str]], meta: DatasetMeta,
                 out_dir: str | os.PathLike[str], complete_only: bool) -> dict[str, int]:
    """Write the dataset of every done location (all seasons, or only those with all seasons when
    ``complete_only``) from the shards' files; returns counts for the log."""
    by_id = {loc.id: loc for loc in locations}
    writer = DatasetWriter(out_dir, meta)
    counts = {"written": 0, "incomplete": 0, "failed": 0}
    seasons = list(meta.seasons) or [""]
    for shard_dir in map(Path, shard_dirs):
        for location_id, rec in sorted(Manifest(shard_dir / MANIFEST_JOURNAL).records().items()):
            if location_id not in by_id:
                continue  # a location since removed from the sheet
            if rec["status"] != DONE:
                counts["failed"] += 1
                continue
            if complete_only and len(rec["seasons"]) < len(seasons):
                counts["incomplete"] += 1
                continue
            for season in rec["seasons"] if meta.seasons else [""]:
                folder = shard_dir / "samples" / location_id / season
                arrays, grid = {}, None
                for name in meta.layers:
                    path = folder / f"{name}.tif"
                    if path.is_file():
                        arrays[name], grid, _ = read_geotiff(path)
                        if len(meta.layers[name].bands) == 1:
                            arrays[name] = arrays[name][0]
                writer.add(location_id, by_id[location_id].split, seasons.index(season) if meta.seasons else 0,
                           grid, arrays)
            counts["written"] += 1
    if not writer.rows:
        raise LocationFailed(f"{out_dir}: no location was acquired in full ({counts}); see the shards' manifests")
    writer.close()
    return counts


