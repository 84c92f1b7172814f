"""Entry points of rules/acquisition.smk: keyword arguments in, files out; scripts only unpack
``snakemake``."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from eolabels.acquisition import earthengine as eeq
from eolabels.acquisition.client import EarthEngineClient
from eolabels.acquisition.dwtiles import TileSettings, acquire_tile, tile_meta
from eolabels.acquisition.noldo import NoldoSettings, acquire_location, noldo_meta
from eolabels.acquisition.pool import Backoff, RateLimiter
from eolabels.acquisition.shards import merge_shards, run_shard, shard_locations
from eolabels.acquisition.sheets import read_dw_tiles, read_locations, read_region, sample_locations
from eolabels.acquisition.transport import LiveHttp, RecordingHttp, ReplayHttp, ResponseStore
from eolabels.acquisition.wiring import shard_dir
from eolabels.acquisition.wms import OsmWms, WmsSettings
from eolabels.atomic import atomic_path

PathLike = str | os.PathLike[str]
log = logging.getLogger(__name__)


def sample_sheet(*, region: PathLike, out: PathLike, n: int, seed: int) -> None:
    """Rule ``sample_locations``: ``n`` seeded random locations inside a GeoJSON region, as a sheet."""
    table = sample_locations(read_region(region), n, seed, prefix=f"{Path(region).stem}_")
    with atomic_path(out) as tmp:
        table.to_csv(tmp, index=False)


def connect(section: Mapping[str, Any]) -> EarthEngineClient:
    """Initialise the real client over the configured transport; the shard's rate-limited client."""
    timeout = float(section["timeout_s"])
    if section["transport"] == "replay":
        eeq.initialize_offline(ReplayHttp(ResponseStore(section["responses"]),
                                          latency=float(section.get("replay_latency_s", 0.0)), timeout=timeout))
    else:
        http = LiveHttp(timeout)
        if section["transport"] == "record":
            http = RecordingHttp(http, ResponseStore(section["responses"]))
        project = eeq.initialize_live(section["project"], http)
        log.info("Earth Engine initialised for project %s (%s)", project, section["transport"])
    b = section["backoff"]
    return EarthEngineClient(RateLimiter(section["requests_per_minute"]),
                             Backoff(base=b["base_s"], cap=b["cap_s"], attempts=b["attempts"]),
                             bytes_limit=section["bytes_limit"])


def noldo_settings(section: Mapping[str, Any]) -> NoldoSettings:
    s = section["noldo"]
    return NoldoSettings(year=s["year"], season_windows={k: tuple(v) for k, v in s["season_windows"].items()},
                         cloud_max=float(s["cloud_max"]), tile_size=s["tile_size"], resolution=float(s["resolution"]),
                         s1_max_days=s["s1_max_days"], resample=s["resample"])


def wms_settings(section: Mapping[str, Any]) -> WmsSettings:
    s = section["osm"]
    return WmsSettings(url=s["url"], layer=s["layer"], style=s["style"], image_format=s["image_format"],
                       n_classes=s["n_classes"], bbox_buffer=s["bbox_buffer"], oversample=s["oversample"],
                       resampling=s["resampling"], timeout=s["timeout_s"])


def read_sheet(dataset: str, sheet: PathLike) -> list:
    return read_locations(sheet) if dataset == "noldo" else read_dw_tiles(sheet)


def acquire_shard(*, dataset: str, sheet: PathLike, shard: int, n_shards: int, section: Mapping[str, Any],
                  summary: PathLike) -> None:
    """Rule ``acquire_shard``: every location of one shard not yet done; failures go to the manifest."""
    sites = shard_locations(read_sheet(dataset, sheet), shard, n_shards)
    client = connect(section)
    if dataset == "noldo":
        cfg = noldo_settings(section)
        def acquire(site, folder):
            return acquire_location(client, site, cfg, folder)
    else:
        tiles = TileSettings(label_dir=section["dw_tiles"]["label_dir"], resolution=section["dw_tiles"]["resolution"])
        if dataset == "dw" and not tiles.label_dir:
            raise ValueError("config.earthengine.dw_tiles.label_dir: the dw dataset needs the expert label tiles")
        wms = OsmWms(wms_settings(section)) if dataset == "osm" else None
        meta = tile_meta(dataset)
        def acquire(site, folder):
            return acquire_tile(client, site, tiles, folder, wms=wms, meta=meta)
    run_shard(sites, acquire, shard_dir(str(summary)), summary, workers=section["workers"])


def merge_dataset(*, dataset: str, sheet: PathLike, summaries: Sequence[PathLike], out_dir: PathLike) -> None:
    """Rule ``merge_shards``: the dataset in the common layout from every shard's done locations
    (``dataset`` is the fetched one: noldo, dw or osm)."""
    meta = noldo_meta() if dataset == "noldo" else tile_meta(dataset)
    meta.extra.update(sheet=str(sheet), shards=len(summaries))
    counts = merge_shards(read_sheet(dataset, sheet), [shard_dir(str(s)) for s in summaries], meta, out_dir)
    log.info("%s: %s", dataset, counts)
