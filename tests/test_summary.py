"""The summary report lists datasets, label quality and every registered result table."""

import json

import pandas as pd

from eolabels.report.summary import write_summary

CARD = {
    "name": "noldo", "source": "synthetic", "samples": 8, "locations": 2, "splits": {"train": 2},
    "tile_shapes": ["48x48"],
    "label_quality": [{"label": "dw", "reference": "truth", "how": "same ids", "pixel_accuracy": 0.7,
                       "mIoU": 0.45, "mIoU_present_classes": 0.5, "labelled_fraction": 1.0,
                       "pixel_accuracy_by_season": {"spring": 0.7, "winter": 0.66}}],
}


def test_summary_has_synthetic_banner_quality_and_tables(tmp_path):
    (tmp_path / "card.json").write_text(json.dumps(CARD))
    pd.DataFrame({"method": ["a", "b"], "mIoU": [0.5, 0.25]}).to_csv(tmp_path / "lsr_synthetic.csv", index=False)
    merged = write_summary([tmp_path / "card.json"], tmp_path / "s.md", tmp_path / "s.csv", tables=[tmp_path / "lsr_synthetic.csv"])
    text = (tmp_path / "s.md").read_text()
    assert "Synthetic world" in text and "not the papers'" in text
    assert "## lsr_synthetic" in text and "0.2500" in text
    assert "winter:0.660" in text
    assert merged.loc[0, "OA"] == 0.7 and pd.read_csv(tmp_path / "s.csv").loc[0, "dataset"] == "noldo"
