import numpy as np
import pytest

from eolabels.cromss.normalization import (
    S1_MEAN,
    S1_STD,
    S2C_MEAN,
    S2C_STD,
    normalise_s1,
    normalise_s2,
    s2_band_indices,
    uint8_stretch,
    uint8_to_unit,
)
from eolabels.cromss.remap import dfc2020_to_dw, remap_dw_expert, remap_osm

DWOSM_VARIANTS = ["s1_b13", "s2_b13", "s2_b9", "s12_b13"]


def _dwosm_image(cases, variant):
    s1, s2 = cases["ds/dwosm/raw_s1_1"], cases["ds/dwosm/raw_s2_1"]
    parts = {
        "s1_b13": [normalise_s1(s1)],
        "s2_b13": [normalise_s2(s2)],
        "s2_b9": [normalise_s2(s2, s2_band_indices(9))],
        "s12_b13": [normalise_s1(s1), normalise_s2(s2)],
    }[variant]
    return np.concatenate(parts)


@pytest.mark.parametrize("source", ["dw", "osm"])
@pytest.mark.parametrize("variant", DWOSM_VARIANTS)
def test_downstream_images_and_labels_match_reference(cases, golden, source, variant):
    golden(f"ds/dwosm/{source}_{variant}/img", _dwosm_image(cases, variant))
    remap = remap_dw_expert if source == "dw" else remap_osm
    gt = cases[f"ds/dwosm/{source}_{variant}/gt"]
    assert np.array_equal(remap(cases[f"ds/dwosm/raw_{source}_1"]), gt)


def test_dfc2020_matches_reference(cases, golden):
    golden("ds/dfc/s1/img", normalise_s1(cases["ds/dfc/raw_s1_0"]))
    golden("ds/dfc/s2/img", normalise_s2(cases["ds/dfc/raw_s2_0"]))
    golden("ds/dfc/convert_0_to_11", dfc2020_to_dw(np.arange(12)).astype(np.float64))
    for i in (0, 1):
        assert np.array_equal(dfc2020_to_dw(cases[f"ds/dfc/raw_dfc_{i}"]), cases[f"ds/dfc/lbl_{i}"])
    for modality in ("s1", "s2"):
        assert np.array_equal(dfc2020_to_dw(cases["ds/dfc/raw_dfc_0"]), cases[f"ds/dfc/{modality}/gt"])


def test_uint8_stretch_by_hand():
    mean, std = np.array([10.0]), np.array([2.0])
    x = np.array([5.0, 6.0, 10.0, 14.0, 20.0]).reshape(1, 1, 5)
    # μ − 2σ → 0, μ → 127.5 truncated to 127, μ + 2σ → 255, outside → clipped
    expected = np.array([0, 0, 127, 255, 255]) / 255
    np.testing.assert_allclose(uint8_stretch(x, mean, std)[0, 0], expected, rtol=1e-6)
    assert normalise_s1((S1_MEAN + 3 * S1_STD).reshape(2, 1, 1)).ravel().tolist() == [1.0, 1.0]
    assert normalise_s2((S2C_MEAN - 2 * S2C_STD).reshape(13, 1, 1)).max() == 0.0


def test_band_sets():
    assert s2_band_indices(9) == (1, 2, 3, 4, 5, 6, 7, 11, 12)
    assert len(s2_band_indices(12)) == 12 and 10 not in s2_band_indices(12)


def test_remaps_by_hand():
    assert remap_dw_expert(np.array([0, 1, 9, 10])).tolist() == [255, 0, 8, 255]
    assert remap_osm(np.array([0, 1, 13])).tolist() == [255, 0, 12]
    assert dfc2020_to_dw(np.array([1, 2, 3, 10])).tolist() == [1, 5, 8, 0]


def test_bad_input_fails():
    with pytest.raises(ValueError, match=r"OSM ids \[14\]"):
        remap_osm(np.array([0, 14]))
    with pytest.raises(ValueError, match="DW ids"):
        remap_dw_expert(np.array([11]))
    with pytest.raises(ValueError, match=r"\(13, H, W\)"):
        normalise_s2(np.zeros((9, 4, 4)))
    with pytest.raises(ValueError, match="one mean/std per band"):
        normalise_s1(np.zeros((3, 4, 4)))
    with pytest.raises(ValueError, match="no S2 band set"):
        s2_band_indices(7)
    with pytest.raises(ValueError, match="uint8"):
        uint8_to_unit(np.zeros((2, 4, 4), dtype=np.float32))


def test_remap_tables_match_spec():
    from eolabels.tables import load_mapping, load_schema

    # cromss §6: DW 0 → ignore, k → k−1, cloud 10 → ignore; OSM 0 → ignore, k → k−1
    assert load_mapping("dw_expert_to_dw") == {0: 255, **{k: k - 1 for k in range(1, 10)}, 10: 255}
    assert load_mapping("osm_legend_to_osm") == {0: 255, **{k: k - 1 for k in range(1, 14)}}
    assert load_schema("osm_legend").names[1:] == load_schema("osm").names
    assert load_schema("dw_expert").names[1:10] == load_schema("dw").names
