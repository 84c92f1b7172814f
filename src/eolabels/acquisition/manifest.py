"""The per-shard manifest: which locations are done and which failed, and why.

An append-only JSON-lines journal, one line per finished location, flushed and fsynced before the
next location counts as done, so a killed job loses at most the locations in flight. Reading keeps
the last record per id and ignores a torn last line. :func:`write_summary` turns it into the shard's
CSV output (atomically), which is what Snakemake sees.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from eolabels.atomic import atomic_path

DONE, FAILED = "done", "failed"


@dataclass
class Acquired:
    """What one location's acquisition wrote: the seasons it has, why others are missing, and its
    index rows (written by :class:`~eolabels.data.writer.DatasetWriter` into the shard)."""

    seasons: list[str]
    missing: dict[str, str]
    rows: list[dict[str, Any]]
SUMMARY_COLUMNS = ("id", "status", "seasons", "missing", "reason")


class Manifest:
    """The journal of one shard (``manifest.jsonl``), safe to append to from several threads."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.lock = threading.Lock()

    def records(self) -> dict[str, dict[str, Any]]:
        """The last record of every location so far."""
        out: dict[str, dict[str, Any]] = {}
        if not self.path.is_file():
            return out
        for line in self.path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line torn by a kill: that location simply is not done
            out[rec["id"]] = rec
        return out

    def done(self) -> set[str]:
        return {i for i, rec in self.records().items() if rec["status"] == DONE}

    def add(self, location_id: str, status: str, *, seasons: list[str] | None = None,
            missing: dict[str, str] | None = None, rows: list[dict[str, Any]] | None = None, reason: str = "") -> None:
        """Record a finished location; ``rows`` are its index rows (paths relative to the shard)."""
        rec = {"id": location_id, "status": status, "seasons": seasons or [], "missing": missing or {},
               "rows": rows or [], "reason": reason}
        line = json.dumps(rec, sort_keys=True) + "\n"
        with self.lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a+b") as stream:
                size = stream.seek(0, os.SEEK_END)
                if size:
                    stream.seek(size - 1)
                    if stream.read(1) != b"\n":
                        line = "\n" + line  # end a line torn by a kill, so this record stays whole
                stream.write(line.encode())
                stream.flush()
                os.fsync(stream.fileno())


def write_summary(manifest: Manifest, ids: list[str], path: str | os.PathLike[str]) -> pd.DataFrame:
    """The shard's CSV: one row per location of the shard, in sheet order (never-tried ones absent)."""
    records = manifest.records()
    rows = [
        {"id": i, "status": r["status"], "seasons": ";".join(r["seasons"]),
         "missing": ";".join(f"{k}: {v}" for k, v in r["missing"].items()), "reason": r["reason"]}
        for i in ids if (r := records.get(i))
    ]
    table = pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)
    return table
