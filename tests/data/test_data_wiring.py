"""Which datasets the data rules acquire, assemble and filter, and the settings they carry."""

from schema_defaults import assert_defaults_match

from eolabels.data.osm_filter import FilterSettings
from eolabels.data.wiring import (
    acquired_datasets,
    acquired_name,
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
    section = {"input": {"dataset": "osm_aligned", "role": "label"}, "threshold": 0.6, "mem_mb": 9, "runtime": 1}
    assert osm_filter_inputs(section)["osm_index"] == "results/data/osm_aligned/index.csv"
    assert osm_filter_settings(section) == {"threshold": 0.6}
    assert osm_filter_targets(["noldo"]) == []
    assert "results/tables/osm_filter.csv" in osm_filter_targets(["dw", "osm"])


def test_filter_settings_defaults_equal_the_schema():
    assert_defaults_match(FilterSettings, "schemas/osm_filter.yaml")
