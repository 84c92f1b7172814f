"""Result tables (eolabels.report.tables): the data column, the banner, the CSV + Markdown twin."""

from __future__ import annotations

import pandas as pd
import pytest

from eolabels.report.tables import (
    DATA_COLUMN,
    combined_source,
    data_banner,
    data_sources,
    is_synthetic,
    source_tag,
    with_data_column,
    write_table,
)

SCORES = pd.DataFrame({"variant": ["naive", "epitome"], "mIoU": [0.25, 0.123456]})


def test_only_generated_data_are_called_synthetic():
    assert is_synthetic("synthetic") and is_synthetic("synthetic:toy")
    assert not is_synthetic("local:chesapeake_npz") and not is_synthetic("local:synthetic_looking_name")
    assert "SYNTHETIC" in data_banner("synthetic") and "not the papers'" in data_banner("synthetic")
    assert "Synthetic world" in data_banner("synthetic:toy") and "synthetic:toy" in data_banner("synthetic:toy")
    real = data_banner("local:chesapeake_npz")
    assert "local:chesapeake_npz" in real and "synthetic" not in real.lower()
    assert source_tag("synthetic").startswith("SYNTHETIC") and source_tag("local:x") == "real data: local:x"


def test_rows_from_several_datasets_name_each_source():
    assert combined_source({"dw": "synthetic", "noldo": "synthetic"}) == "synthetic"
    mixed = combined_source({"dw": "synthetic", "noldo": "local:s2_dw_scene"})
    assert mixed == "dw=synthetic; noldo=local:s2_dw_scene"
    assert is_synthetic(mixed) and "Partly SYNTHETIC" in data_banner(mixed) and mixed in data_banner(mixed)
    assert source_tag(mixed) == f"partly SYNTHETIC data: {mixed}"
    real = combined_source({"a": "local:x", "b": "local:y"})
    assert not is_synthetic(real) and "SYNTHETIC" not in data_banner(real) + source_tag(real)
    assert data_banner(combined_source({"a": "synthetic", "b": "synthetic:toy"})) == data_banner("a=synthetic; b=synthetic:toy")
    assert data_banner("a=synthetic; b=synthetic:toy").startswith("**SYNTHETIC data**")
    with pytest.raises(ValueError, match="no dataset given"):
        combined_source({})


def test_data_column_comes_first_and_must_agree():
    table = with_data_column(SCORES, "local:x")
    assert list(table.columns) == [DATA_COLUMN, "variant", "mIoU"] and set(table[DATA_COLUMN]) == {"local:x"}
    assert DATA_COLUMN not in SCORES  # the input is left as it is
    assert with_data_column(table, "local:x").equals(table)
    with pytest.raises(ValueError, match="not from 'synthetic'"):
        with_data_column(table, "synthetic")
    with pytest.raises(ValueError, match="source of its data"):
        with_data_column(SCORES, "")
    with pytest.raises(ValueError, match="no 'data' column"):
        data_sources(SCORES)


@pytest.mark.parametrize("source", ["synthetic", "local:s2_dw_scene"])
def test_written_table_names_its_data(tmp_path, source):
    written = write_table(SCORES, tmp_path / "t.csv", tmp_path / "t.md", "hand case", ["first note", "second"],
                          source=source)
    csv = pd.read_csv(tmp_path / "t.csv")
    assert list(csv[DATA_COLUMN]) == [source, source] and csv.equals(written)
    assert csv.loc[1, "mIoU"] == 0.123456  # full precision unless asked
    markdown = (tmp_path / "t.md").read_text()
    assert markdown.startswith(f"# hand case\n\n> {data_banner(source)}\n\n> first note\n\n> second\n\n| data ")
    assert "0.1235" in markdown
    assert ("SYNTHETIC" in markdown) == (source == "synthetic")


def test_rows_that_name_their_own_data(tmp_path):
    mixed = pd.DataFrame({"run": ["a", "b", "c"], DATA_COLUMN: ["synthetic", "local:x", "synthetic"], "OA": [0.5] * 3})
    write_table(mixed, tmp_path / "t.csv", tmp_path / "t.md", "runs", float_format="%.2f")
    markdown = (tmp_path / "t.md").read_text()
    assert markdown.index(data_banner("synthetic")) < markdown.index(data_banner("local:x"))
    assert markdown.count("SYNTHETIC") == 1
    assert (tmp_path / "t.csv").read_text().splitlines()[1] == "a,synthetic,0.50"
    with pytest.raises(ValueError, match="no 'data' column"):
        write_table(SCORES, tmp_path / "u.csv", tmp_path / "u.md", "unsourced")
    assert not (tmp_path / "u.csv").exists() and not (tmp_path / "u.md").exists()


def test_empty_table_still_has_the_column_and_banner(tmp_path):
    written = write_table(SCORES.iloc[:0], tmp_path / "t.csv", tmp_path / "t.md", "nothing", source="synthetic")
    assert list(written.columns)[0] == DATA_COLUMN and written.empty
    assert data_banner("synthetic") in (tmp_path / "t.md").read_text()


def test_multi_line_notes_stay_quoted(tmp_path):
    write_table(SCORES, tmp_path / "t.csv", tmp_path / "t.md", "t", ["line one\nline two"], source="synthetic")
    assert "> line one\n> line two\n" in (tmp_path / "t.md").read_text()
