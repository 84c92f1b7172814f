"""The summary report lists datasets, label quality and every registered result table."""

import json

import pandas as pd

from eolabels.report.summary import write_summary
from eolabels.report.tables import data_banner, write_table

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
    merged = write_summary(card_paths=[tmp_path / "card.json"], out_markdown=tmp_path / "s.md",
                           out_csv=tmp_path / "s.csv", tables=[tmp_path / "lsr_synthetic.csv"])
    text = (tmp_path / "s.md").read_text()
    assert "Synthetic world" in text and "not the papers'" in text and data_banner("synthetic") in text
    assert "## lsr_synthetic" in text and "0.2500" in text
    assert "winter:0.660" in text
    assert merged.loc[0, "OA"] == 0.7 and pd.read_csv(tmp_path / "s.csv").loc[0, "dataset"] == "noldo"


def _real_card(tmp_path):
    card = {**CARD, "source": "local:s2_dw_scene"}
    (tmp_path / "card.json").write_text(json.dumps(card))
    return tmp_path / "card.json"


def test_tables_render_with_their_data_column_and_banner(tmp_path):
    scores = pd.DataFrame({"method": ["a"], "mIoU": [0.5]})
    write_table(scores, tmp_path / "lsr_synthetic.csv", tmp_path / "lsr_synthetic.md", "t", source="synthetic")
    write_table(scores, tmp_path / "pretraining.csv", tmp_path / "pretraining.md", "t", source="local:s2_dw_scene")
    tables = [tmp_path / "lsr_synthetic.csv", tmp_path / "pretraining.csv"]
    write_summary(card_paths=[_real_card(tmp_path)], out_markdown=tmp_path / "s.md", out_csv=tmp_path / "s.csv",
                  tables=tables)
    text = (tmp_path / "s.md").read_text()
    # a real run that still holds a synthetic table says so, once per source
    assert text.count(data_banner("synthetic")) == 1 and text.count(data_banner("local:s2_dw_scene")) == 1
    assert f"From `{tables[0]}`; data: synthetic." in text
    assert f"From `{tables[1]}`; data: local:s2_dw_scene." in text
    assert "| data      | method   |   mIoU |" in text and "| synthetic | a        | 0.5000 |" in text


def test_real_run_has_no_synthetic_banner(tmp_path):
    scores = pd.DataFrame({"method": ["a"], "mIoU": [0.5]})
    write_table(scores, tmp_path / "lsr_chesapeake.csv", tmp_path / "x.md", "t", source="local:s2_dw_scene")
    # a table from before the data column (or another tool) is shown, saying its data are not recorded
    scores.to_csv(tmp_path / "legacy.csv", index=False)
    write_summary(card_paths=[_real_card(tmp_path)], out_markdown=tmp_path / "s.md", out_csv=tmp_path / "s.csv",
                  tables=[tmp_path / "lsr_chesapeake.csv", tmp_path / "legacy.csv"])
    text = (tmp_path / "s.md").read_text()
    assert "SYNTHETIC" not in text and "Synthetic" not in text
    assert text.startswith(f"# eolabels run summary\n\n> {data_banner('local:s2_dw_scene')}\n\n## Datasets")
    assert f"From `{tmp_path / 'legacy.csv'}`; data: not recorded." in text


def test_dataset_table_shows_what_assembly_and_the_filter_kept():
    from eolabels.report.summary import dataset_table

    noldo = {**CARD, "assembly": {"locations_kept": 16, "locations_raw": 21, "dropped_by_layer": {"s2": 1, "s1": 0, "dw": 4}}}
    osm = {**CARD, "name": "osm", "osm_filter": {"kept": 4, "tiles": 9, "threshold": 0.7, "train": 2, "test": 2, "test_from_dw_train": 0}}
    prepared = dataset_table([noldo, osm])["prepared"].tolist()
    assert prepared == [
        "assembled: 16 of 21 locations complete (dropped lacking s2 1, dw 4)",
        "OSM↔DW filter: 4 of 9 DW tiles with OA ≥ 0.7 (train 2, test 2 incl. 0 DW-train)",
    ]
