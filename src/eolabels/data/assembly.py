"""NoLDO-S12 assembly (CromSS §II-A, spec §6): keep the locations complete in every season.

SSL4EO-S12 has S1 and S2 for 4 seasons at 251,079 locations, but Dynamic World has no label for some
of them (no cloud-free prediction in a season); NoLDO-S12 keeps the 103,793 locations where all four
seasons have S1, S2 and a noisy label. :func:`assemble` does the same for any dataset in the common
layout: a location is kept only if every season of ``dataset.json`` has a row with a path for every
required layer (the images and the label). What was dropped, and why, goes into the assembled
``dataset.json`` (``extra.assembly``), which the data card shows.

The kept files are hard-linked into the assembled dataset (copied where the file system refuses a
link), so it is self-contained at no cost in disk; files an index points at outside its own folder
(a released layout read in place) are pointed at in place.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eolabels.data.index import DatasetIndex, DatasetMeta, IndexError_, write_index

log = logging.getLogger(__name__)


@dataclass
class AssemblyReport:
    """Counts of one assembly: locations before and after, and the missing items behind each drop.

    ``missing[season][layer]`` counts locations lacking that layer in that season (a location missing
    several items counts once under each); ``dropped_by_layer[layer]`` counts dropped locations that
    lack ``layer`` in at least one season.
    """

    required: list[str]
    seasons: list[str]
    locations_raw: int = 0
    locations_kept: int = 0
    missing: dict[str, dict[str, int]] = field(default_factory=dict)
    dropped_by_layer: dict[str, int] = field(default_factory=dict)

    @property
    def locations_dropped(self) -> int:
        return self.locations_raw - self.locations_kept

    def to_json(self) -> dict[str, Any]:
        return {
            "rule": "keep locations whose every season has every required layer",
            "required_layers": self.required,
            "locations_raw": self.locations_raw,
            "locations_kept": self.locations_kept,
            "locations_dropped": self.locations_dropped,
            "kept_fraction": round(self.locations_kept / self.locations_raw, 4) if self.locations_raw else 0.0,
            "dropped_by_layer": self.dropped_by_layer,
            "missing_by_season": self.missing,
        }


def required_layers(meta: DatasetMeta) -> list[str]:
    """The layers a complete location has in every season: every image layer and the one label layer."""
    images = [name for name, spec in meta.layers.items() if spec.role == "image"]
    if not images:
        raise IndexError_(f"dataset {meta.name!r}: no image layer to assemble")
    return [*images, meta.layer("label")]


def complete_locations(index: DatasetIndex, required: Sequence[str]) -> tuple[list[str], AssemblyReport]:
    """The ids of locations complete in every season (in index order) and the report of the rest."""
    seasons = list(index.meta.seasons) or ["(single)"]
    report = AssemblyReport(
        required=list(required), seasons=seasons,
        missing={s: {layer: 0 for layer in required} for s in seasons},
        dropped_by_layer={layer: 0 for layer in required},
    )
    table = index.table
    present: dict[str, dict[int, dict[str, bool]]] = {}
    for row in table[["id", "season", *required]].itertuples(index=False):
        sample, season = str(row[0]), int(row[1])
        if not 0 <= season < len(seasons):
            raise IndexError_(f"{index.root}: location {sample} has season {season}; dataset.json lists {seasons}")
        if season in present.setdefault(sample, {}):
            raise IndexError_(f"{index.root}: location {sample} lists season {seasons[season]} twice")
        present[sample][season] = {layer: bool(path) for layer, path in zip(required, row[2:])}
    kept: list[str] = []
    for sample, by_season in present.items():
        lacking: set[str] = set()
        for s, name in enumerate(seasons):
            for layer in required:
                if not by_season.get(s, {}).get(layer, False):
                    report.missing[name][layer] += 1
                    lacking.add(layer)
        if lacking:
            for layer in lacking:
                report.dropped_by_layer[layer] += 1
        else:
            kept.append(sample)
    report.locations_raw, report.locations_kept = len(present), len(kept)
    return kept, report


def _place(src: Path, src_root: Path, dst_root: Path, rel: str) -> str:
    """Hard-link (or copy) ``src`` to ``dst_root/rel``; a file outside ``src_root`` stays in place."""
    if not src.is_file():
        raise IndexError_(f"{src}: listed in {src_root / 'index.csv'} but missing")
    try:
        src.resolve().relative_to(src_root.resolve())
    except ValueError:
        return os.path.relpath(src.resolve(), dst_root.resolve())
    dst = dst_root / rel
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
    return rel


def assemble(raw_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str]) -> AssemblyReport:
    """Write the dataset of ``raw_dir``'s complete locations to ``out_dir``; returns the report.

    Every layer of a kept location is carried (truth included); no location complete fails, as a
    pretraining set without samples would only fail later.
    """
    raw_dir, out_dir = Path(raw_dir), Path(out_dir)
    index = DatasetIndex.open(raw_dir)
    required = required_layers(index.meta)
    kept, report = complete_locations(index, required)
    log.info(
        "%s: %d of %d locations complete (%s); missing by season: %s",
        raw_dir, report.locations_kept, report.locations_raw, ", ".join(required), report.missing,
    )
    if not kept:
        raise IndexError_(
            f"{raw_dir}: no location has {required} in every season {report.seasons}; missing: {report.missing}"
        )
    shutil.rmtree(out_dir / "samples", ignore_errors=True)
    keep = set(kept)
    rows = []
    for row in index.table.to_dict("records"):
        if str(row["id"]) not in keep:
            continue
        for layer in index.meta.layers:
            if row[layer]:
                row[layer] = _place(raw_dir / row[layer], raw_dir, out_dir, row[layer])
        rows.append(row)
    meta = DatasetMeta(
        name=index.meta.name,
        source=index.meta.source,
        layers=index.meta.layers,
        seasons=index.meta.seasons,
        description=f"{index.meta.description}; assembled: the locations complete in every season",
        extra={**index.meta.extra, "assembly": report.to_json()},
    )
    write_index(out_dir, meta, rows)
    return report
