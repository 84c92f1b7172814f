"""What a kill -9 leaves and the next run must cope with: a torn last journal line, and the hidden
temporaries of atomic writes whose cleanup never ran."""

from __future__ import annotations

from eolabels.acquisition.manifest import DONE, FAILED, Manifest
from eolabels.atomic import remove_stale_temporaries


def test_a_record_after_a_torn_line_stays_whole(tmp_path):
    manifest = Manifest(tmp_path / "manifest.jsonl")
    manifest.add("a", DONE, seasons=["spring"])
    with open(manifest.path, "a") as stream:  # the kill fell in the middle of b's line
        stream.write('{"id": "b", "status": "do')
    manifest.add("c", FAILED, reason="location c: no Sentinel-2 L1C image")
    records = manifest.records()
    assert sorted(records) == ["a", "c"] and manifest.done() == {"a"}
    assert records["c"]["reason"] == "location c: no Sentinel-2 L1C image"
    assert manifest.path.read_text().count("\n") == 3  # a, the torn b ended, c


def test_stale_temporaries_are_removed_and_nothing_else(tmp_path):
    keep = [tmp_path / "a/s2.tif", tmp_path / "manifest.jsonl", tmp_path / "b/notes.tmp", tmp_path / ".hidden"]
    stale = [tmp_path / "a/.s2.tif.x1y2z3.tmp", tmp_path / "b/c/.dw.tif.abcdef.tmp", tmp_path / ".index.csv.q.tmp"]
    for path in keep + stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    assert sorted(remove_stale_temporaries(tmp_path)) == sorted(stale)
    assert all(p.exists() for p in keep) and not any(p.exists() for p in stale)
    assert remove_stale_temporaries(tmp_path / "absent") == []
