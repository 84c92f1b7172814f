"""The acquisition wiring, and drift between the earthengine schema and the settings dataclasses."""

from __future__ import annotations

import yaml
from schema_defaults import REPO_ROOT, assert_defaults_match, schema_section

from eolabels.acquisition.dwtiles import TileSettings
from eolabels.acquisition.noldo import NoldoSettings
from eolabels.acquisition.wiring import acquisition_targets, shard_dir, shard_settings, shard_summary
from eolabels.acquisition.wms import WmsSettings


def test_defaults_match_the_schema():
    assert_defaults_match(NoldoSettings, "schemas/earthengine.yaml", "noldo", skip=("season_windows",))
    windows = schema_section("schemas/earthengine.yaml", "noldo")["season_windows"]["default"]
    assert {k: tuple(v) for k, v in windows.items()} == NoldoSettings().season_windows
    assert_defaults_match(TileSettings, "schemas/earthengine.yaml", "dw_tiles")
    assert_defaults_match(WmsSettings, "schemas/earthengine.yaml", "osm", skip=("timeout", "version"))
    assert schema_section("schemas/earthengine.yaml", "osm")["timeout_s"]["default"] == WmsSettings().timeout


def test_off_by_default():
    assert schema_section("schemas/earthengine.yaml")["enabled"]["default"] is False


def test_paths_targets_and_settings():
    section = yaml.safe_load((REPO_ROOT / "config" / "earthengine.yaml").read_text())["earthengine"]
    section.update(enabled=True, datasets=["noldo", "osm"], workers=8, shards=3, noldo={"sheet": "a.csv"},
                   dw_tiles={"sheet": "b.csv"}, osm={"url": "u"}, mem_mb=1, runtime=1, sample={})
    assert acquisition_targets(section) == ["results/acquisition/noldo/dataset/index.csv",
                                            "results/acquisition/osm/dataset/index.csv"]
    assert acquisition_targets({**section, "enabled": False}) == []
    assert shard_dir(shard_summary("noldo", 2)) == "results/acquisition/noldo/shards/2"
    noldo, osm = shard_settings(section, "noldo"), shard_settings(section, "osm")
    assert "noldo" in noldo and "dw_tiles" not in noldo and "osm" not in noldo and "shards" not in noldo
    assert osm["dw_tiles"] == {"sheet": "b.csv"} and osm["osm"] == {"url": "u"} and "noldo" not in osm
