"""Rule params carry exactly the settings a rule uses (epitome/wiring.py), so edits re-run only dependents."""

from __future__ import annotations

import pytest

from eolabels.epitome.wiring import canonical, reading_settings, variant_inputs, variant_settings

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
