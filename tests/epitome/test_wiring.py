"""Rule params carry exactly the settings a rule uses (epitome/wiring.py), so edits re-run only dependents."""

from __future__ import annotations

import pytest

from eolabels.epitome.wiring import (
    canonical,
    epitome_tables,
    epitome_targets,
    lsr_datasets,
    lsr_table,
    reading_settings,
    trains_epitome,
    variant_inputs,
    variant_settings,
)

SECTION = {
    "image_scale": 255, "bands": ["B2"], "variants": ["naive"], "table": {"kind": "file"},
    "epitome": {"side": 8}, "embed": {"patch_size": 7, "samples": 9}, "em": {"iterations": 20},
    "reconstruct": {"stride": 4}, "self_epitomic": {"samples": 5}, "colour": {"components": 3},
}


def test_each_variant_sees_only_its_subsections():
    assert variant_settings(SECTION, "naive") == {}
    assert variant_settings(SECTION, "colour") == {"colour": {"components": 3}}
    assert variant_settings(SECTION, "self_epitomic") == {"self_epitomic": {"samples": 5}, "em": {"iterations": 20}}
    # reconstruction depends on the embedding's patch side only, not on its sample count
    assert variant_settings(SECTION, "epitome") == {"reconstruct": {"stride": 4}, "patch_size": 7}
    with pytest.raises(ValueError, match="unknown LSR variant"):
        variant_settings(SECTION, "bicubic")


def test_reading_and_inputs():
    assert reading_settings(SECTION) == {"image_scale": 255, "bands": ["B2"]}
    assert set(variant_inputs("lsr", "colour")) == {"index", "meta"}
    assert variant_inputs("dfc2020", "epitome")["probs"] == "results/epitome/dfc2020/label_probs.pt"


def test_canonical_sorts_keys_recursively():
    value = canonical({"b": {"y": 1, "x": [{"d": 1, "c": 2}]}, "a": 0})
    assert repr(value) == "{'a': 0, 'b': {'x': [{'c': 2, 'd': 1}], 'y': 1}}"


def test_stage_datasets_come_from_the_schema_sections(repo_root):
    schema = repo_root / "config" / "schemas" / "epitome.yaml"
    assert lsr_datasets(schema, ["noldo", "dw", "osm", "dfc2020", "lsr"]) == ["lsr", "dfc2020"]
    assert lsr_datasets(schema, ["dfc2020", "noldo"]) == ["dfc2020"]


def test_lsr_table_is_named_after_its_data():
    assert lsr_table("synthetic", {}) == "lsr_synthetic"
    assert lsr_table("local", {"noldo": {"format": "s2_dw_scene"}}) == "lsr_synthetic"
    assert lsr_table("local", {"lsr": {"format": "chesapeake_npz", "patches_dir": "p"}}) == "lsr_chesapeake"


def test_targets_and_tables_of_the_stage():
    section = {"lsr": {"variants": ["naive", "colour"]}, "dfc2020": {}}
    assert not trains_epitome(section["lsr"]) and trains_epitome(section["dfc2020"])
    assert epitome_targets(section, ["lsr"], "lsr_synthetic") == [
        "results/tables/lsr_synthetic.csv", "results/tables/lsr_synthetic.md", "results/lsr/lsr/comparison.png",
    ]
    targets = epitome_targets(section, ["dfc2020"], "lsr_synthetic")
    assert targets[:4] == [f"results/epitome/dfc2020/{name}.png" for name in ("means", "usage", "promotion", "loss")]
    assert targets[4:] == [
        "results/tables/dfc2020_lsr.csv", "results/tables/dfc2020_lsr.md",
        "results/lsr/dfc2020/comparison.png", "results/epitome/dfc2020/distilled_loss.png",
    ]
    assert epitome_tables(["lsr", "dfc2020"], "lsr_chesapeake") == [
        "results/tables/lsr_chesapeake.csv", "results/tables/dfc2020_lsr.csv",
    ]
