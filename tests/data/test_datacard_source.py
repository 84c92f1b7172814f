"""Data cards and previews (data/datacard.py) say SYNTHETIC for the synthetic world only."""

from __future__ import annotations

import json

import matplotlib.pyplot as plt
import pytest

from eolabels.data.datacard import plot_preview, write_datacard
from eolabels.data.index import META_FILE
from eolabels.data.synthetic import generate_dataset
from eolabels.report.tables import source_tag


def _dataset(root, source):
    generate_dataset("lsr", root, {"n_tiles": 1, "tile_size": 60, "block": 30, "feature_size": 15.0}, seed=5)
    meta = json.loads((root / META_FILE).read_text())
    (root / META_FILE).write_text(json.dumps({**meta, "source": source}))
    return root


@pytest.mark.parametrize("source", ["synthetic", "local:chesapeake_npz"])
def test_card_and_preview_name_the_source(tmp_path, monkeypatch, source):
    root = _dataset(tmp_path / "lsr", source)
    card = write_datacard(root, tmp_path / "card.json")
    assert card["source"] == source and card["synthetic"] == (source == "synthetic")
    titles = []
    close = plt.close

    def record_title(fig):
        titles.append(fig._suptitle.get_text())
        close(fig)

    monkeypatch.setattr(plt, "close", record_title)
    assert plot_preview(root, tmp_path / "preview.png", n_samples=1).stat().st_size > 1000
    assert titles == [f"lsr: {source_tag(source)}"]
    assert ("SYNTHETIC" in titles[0]) == (source == "synthetic")
