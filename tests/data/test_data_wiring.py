"""Which datasets the data rules acquire, assemble and filter, and the settings they carry."""

import pytest
from schema_defaults import assert_defaults_match

from eolabels.data.osm_filter import FilterSettings
from eolabels.data.wiring import (
    acquired_datasets,
    acquired_name,
    filter_maps,
    osm_filter_inputs,
    osm_filter_settings,
    osm_filter_targets,
    source_name,
    synthetic_section,
)


def test_noldo_and_osm_are_made_of_acquired_datasets():
    assert acquired_name("noldo") == "noldo_raw" and acquired_name("osm") == "osm_raw" and acquired_name("lsr") == "lsr"
    assert source_name("noldo_raw") == "noldo" and source_name("dw") == "dw"
    assert acquired_datasets(["noldo", "dw", "osm"]) == ["noldo_raw", "dw", "osm_raw"]
    assert acquired_datasets(["osm"]) == ["osm_raw", "dw"]  # the OSM labels lie on the dw tiles


def test_the_osm_labels_generator_gets_the_dw_tiles_section():
    synthetic = {"osm": {"missing_fraction": 0.1, "misregistration_px": 2.0}, "dw": {"tile_size": 48, "n_train": 2}}
    section = synthetic_section(synthetic, "osm_raw")
    assert list(section) == ["misregistration_px", "missing_fraction", "dw_tiles"]
    assert section["dw_tiles"] == {"n_train": 2, "tile_size": 48}
    assert synthetic_section(synthetic, "dw") == {"n_train": 2, "tile_size": 48}


def test_filter_input_is_a_setting_and_job_keys_are_not():
    section = {"input": {"maps": "raw", "role": "label"}, "threshold": 0.6, "mem_mb": 9, "runtime": 1}
    assert osm_filter_inputs(section, alignment_enabled=False)["osm_index"] == "results/data/osm_raw/index.csv"
    assert osm_filter_settings(section) == {"threshold": 0.6}
    assert osm_filter_targets(["noldo"]) == []
    assert "results/tables/osm_filter.csv" in osm_filter_targets(["dw", "osm"])


def test_filter_maps_follow_the_alignment_stage():
    auto = {"input": {"maps": "auto", "role": "label"}}
    assert filter_maps(auto, alignment_enabled=False) == "raw"  # the default run is unchanged
    assert filter_maps(auto, alignment_enabled=True) == "aligned"
    raw = {"input": {"maps": "raw", "role": "label"}}
    assert filter_maps(raw, alignment_enabled=True) == "raw"
    with pytest.raises(ValueError, match="'aligned' but config.alignment.enabled is false"):
        filter_maps({"input": {"maps": "aligned", "role": "label"}}, alignment_enabled=False)
    # with the stage enabled the filter reads both maps, whichever it keeps
    inputs = osm_filter_inputs(auto, alignment_enabled=True)
    assert inputs["osm_index"] == "results/data/osm_aligned/index.csv"
    assert inputs["compare_index"] == "results/data/osm_raw/index.csv"
    inputs = osm_filter_inputs(raw, alignment_enabled=True)
    assert inputs["osm_index"] == "results/data/osm_raw/index.csv"
    assert inputs["compare_index"] == "results/data/osm_aligned/index.csv"
    assert "compare_index" not in osm_filter_inputs(raw, alignment_enabled=False)


def test_filter_settings_defaults_equal_the_schema():
    assert_defaults_match(FilterSettings, "schemas/osm_filter.yaml")
