"""The acquisition wiring, and drift between the earthengine schema and the settings dataclasses."""

from __future__ import annotations

import yaml
from schema_defaults import REPO_ROOT, assert_defaults_match, schema_section

from eolabels.acquisition.dwtiles import TileSettings
from eolabels.acquisition.noldo import NoldoSettings
from eolabels.acquisition.wiring import (
    fetched_datasets,
    merged_datasets,
    shard_dir,
    shard_settings,
    shard_summaries,
    shard_summary,
    source_errors,
)
from eolabels.acquisition.wms import WmsSettings


def test_defaults_match_the_schema():
    assert_defaults_match(NoldoSettings, "schemas/earthengine.yaml", "noldo", skip=("season_windows",))
    windows = schema_section("schemas/earthengine.yaml", "noldo")["season_windows"]["default"]
    assert {k: tuple(v) for k, v in windows.items()} == NoldoSettings().season_windows
    assert_defaults_match(TileSettings, "schemas/earthengine.yaml", "dw_tiles")
    assert_defaults_match(WmsSettings, "schemas/earthengine.yaml", "osm", skip=("timeout", "version"))
    assert schema_section("schemas/earthengine.yaml", "osm")["timeout_s"]["default"] == WmsSettings().timeout


def test_off_by_default():
    """No dataset comes from Earth Engine unless config.source says so."""
    assert schema_section("schema.yaml")["source"]["default"] == "synthetic"
    assert yaml.safe_load((REPO_ROOT / "config" / "config.yaml").read_text())["source"] == "synthetic"


def test_the_source_map_says_what_is_fetched_and_merged():
    assert fetched_datasets([]) == merged_datasets([]) == []
    # noldo is merged for the assembly, osm for the filter, together with the dw tiles its labels lie on
    assert merged_datasets(["noldo", "osm"]) == ["noldo_raw", "osm_raw", "dw"]
    assert fetched_datasets(["noldo", "osm"]) == ["noldo", "osm", "dw"]
    assert merged_datasets(["dw"]) == fetched_datasets(["dw"]) == ["dw"]


def test_source_errors():
    sources = {"noldo": "earthengine", "dw": "synthetic", "osm": "earthengine", "dfc2020": "earthengine", "lsr": "local"}
    errors = source_errors(sources, ["noldo", "dw", "osm", "dfc2020", "lsr"])
    assert len(errors) == 2
    assert errors[0].startswith("config.source: dfc2020 cannot come from earthengine (it provides noldo, dw, osm)")
    assert "osm comes from earthengine" in errors[1] and "but dw from synthetic" in errors[1]
    assert source_errors(sources, ["noldo", "lsr"]) == []  # only the datasets the run makes count
    assert source_errors({**sources, "dw": "earthengine"}, ["noldo", "dw", "osm"]) == []


def test_paths_and_settings():
    section = yaml.safe_load((REPO_ROOT / "config" / "earthengine.yaml").read_text())["earthengine"]
    section.update(workers=8, shards=3, noldo={"sheet": "a.csv"}, dw_tiles={"sheet": "b.csv"}, osm={"url": "u"},
                   mem_mb=1, runtime=1, sample={})
    assert shard_dir(shard_summary("noldo", 2)) == "results/acquisition/noldo/shards/2"
    assert shard_summaries("osm", 2) == ["results/acquisition/osm/shards/0.csv", "results/acquisition/osm/shards/1.csv"]
    noldo, osm = shard_settings(section, "noldo"), shard_settings(section, "osm")
    assert "noldo" in noldo and "dw_tiles" not in noldo and "osm" not in noldo and "shards" not in noldo
    assert osm["dw_tiles"] == {"sheet": "b.csv"} and osm["osm"] == {"url": "u"} and "noldo" not in osm
