"""Class schemas and label-transfer tables in config/tables/ against the specs' text.

Expected values below are transcribed from the specs independently of the CSV files
(cromss.md §6 and §9, epitome.md §9.1 and §10, shared/real/*/README.md).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from eolabels.tables import (
    UNLABELLED,
    ClassSchema,
    TableError,
    load_many_to_many,
    load_mapping,
    load_schema,
    load_transfer_matrix,
    resolve_tables_dir,
)

SCHEMAS = ["dw", "osm", "dfc2020", "dfc2020_original", "igbp", "nlcd", "lsr4", "chesapeake"]
MAPPINGS = ["igbp_to_dfc2020", "dfc2020_to_dw", "chesapeake_to_lsr4"]


@pytest.fixture()
def tmp_tables(tmp_path: Path) -> Path:
    """A writable copy of the repo's tables, to corrupt one file at a time."""
    dst = tmp_path / "tables"
    shutil.copytree(resolve_tables_dir(), dst)
    return dst


def test_default_dir_is_repo_config_and_env_overrides(
    repo_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("EOLABELS_TABLES", raising=False)
    assert resolve_tables_dir() == repo_root / "config" / "tables"
    monkeypatch.setenv("EOLABELS_TABLES", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "dw.csv")):
        load_schema("dw")


@pytest.mark.parametrize("name", SCHEMAS)
def test_every_schema_loads(name: str) -> None:
    s = load_schema(name)
    assert s.num_classes == len(s.ids) == len(s.names) == len(s.colors) > 0
    rgb = s.rgb()
    assert rgb.shape == (s.num_classes, 3) and rgb.min() >= 0 and rgb.max() <= 1
    assert len(set(s.colors)) == s.num_classes, "classes must be told apart on a map"


def test_every_transfer_table_loads() -> None:
    for name in MAPPINGS:
        assert load_mapping(name)
    assert load_many_to_many("osm_to_dw")
    assert load_transfer_matrix("nlcd_to_lsr4_prob", row_sums="renormalize")[0].size


def test_dw_schema_matches_spec_and_real_palette() -> None:
    dw = load_schema("dw")
    assert dw.ids == tuple(range(9))
    # cromss §6: 0 Water, 1 Trees, 2 Grass, 3 Flooded vegetation, 4 Crops, 5 Shrub & Scrub,
    # 6 Built area, 7 Bare ground, 8 Snow & Ice (band names as in the real dw_prob.tif)
    assert dw.names == (
        "water", "trees", "grass", "flooded_vegetation", "crops",
        "shrub_and_scrub", "built", "bare", "snow_and_ice",
    )
    assert dw.colors[0] == "#419bdf" and dw.colors[6] == "#c4281b" and dw.colors[8] == "#b39fe1"


@pytest.mark.real
def test_dw_palette_equals_real_label_colour_table(real_dir: Path) -> None:
    rasterio = pytest.importorskip("rasterio")
    with rasterio.open(real_dir / "s2_18SVG" / "dw_label.tif") as src:
        cmap = src.colormap(1)
    dw = load_schema("dw")
    expected = np.array([cmap[i][:3] for i in dw.ids], dtype=np.float64) / 255.0
    np.testing.assert_array_equal(dw.rgb(), expected)


def test_other_schemas_match_specs() -> None:
    osm = load_schema("osm")
    assert osm.ids == tuple(range(13))
    assert osm.names[0] == "urban_fabric" and osm.names[8] == "water_bodies"
    assert osm.names[12] == "coastal_wetlands"
    dfc = load_schema("dfc2020")
    assert dfc.ids == tuple(range(8))
    assert dfc.names == (
        "water", "forest", "grassland", "wetland", "cropland", "shrubland", "urban", "barren",
    )
    assert load_schema("dfc2020_original").ids == tuple(range(1, 11))
    assert load_schema("igbp").ids == tuple(range(1, 18))
    assert load_schema("lsr4").names == ("water", "forest", "field", "impervious")
    assert load_schema("chesapeake").ids == (1, 2, 3, 4, 5, 6, 15)
    nlcd = load_schema("nlcd")
    assert nlcd.colors[nlcd.index_of(11)] == "#466b9f"
    assert nlcd.index_of(41) == 7


def test_nlcd_table_values_and_row_sums() -> None:
    P, src, tgt = load_transfer_matrix("nlcd_to_lsr4_prob", row_sums="as_listed")
    assert tgt == [0, 1, 2, 3]  # water, forest, field, impervious
    assert set(src) == set(load_schema("nlcd").ids)
    row = {c: P[src.index(c)] for c in src}
    # epitome.md §10 (supplement Table 2 / util.py), kept exactly as listed
    np.testing.assert_array_equal(row[11], [0.97, 0.01, 0.01, 0.02])
    np.testing.assert_array_equal(row[24], [0.01, 0.03, 0.07, 0.89])
    np.testing.assert_array_equal(row[43], [0.00, 0.92, 0.06, 0.02])  # code value, not Table 2's .01
    np.testing.assert_array_equal(row[82], [0.00, 0.11, 0.86, 0.03])
    np.testing.assert_array_equal(row[95], [0.11, 0.07, 0.81, 0.01])
    np.testing.assert_array_equal(row[51], [0.0, 0.5, 0.5, 0.0])
    # the published rows are rounded: they sum to 0.99..1.01, so the strict default refuses them
    assert np.all(np.abs(P.sum(axis=1) - 1) <= 0.0100001)
    with pytest.raises(TableError, match=r"nlcd_to_lsr4_prob\.csv, line 2: row nlcd_id=11 sums to 1\.01"):
        load_transfer_matrix("nlcd_to_lsr4_prob")
    Pn, src_n, _ = load_transfer_matrix("nlcd_to_lsr4_prob", row_sums="renormalize")
    assert src_n == src
    np.testing.assert_allclose(Pn.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(Pn[src.index(11)], np.array([0.97, 0.01, 0.01, 0.02]) / 1.01)


def test_osm_to_dw_equals_spec_sets() -> None:
    osm = load_schema("osm")
    dw = load_schema("dw")
    o = {n: osm.ids[osm.names.index(n)] for n in osm.names}
    d = {n: dw.ids[dw.names.index(n)] for n in dw.names}
    # cromss.md §9, written out from the spec text
    expected = {
        o["urban_fabric"]: {d["built"]},
        o["industrial_commercial_transport"]: {d["built"]},
        o["arable_land"]: {d["crops"]},
        o["artificial_vegetated"]: {d["trees"], d["grass"]},
        o["forests"]: {d["trees"]},
        o["mine_dump_construction"]: {d["bare"]},
        o["water_bodies"]: {d["water"]},
        o["open_spaces"]: {d["bare"], d["snow_and_ice"]},
        o["pastures"]: {d["grass"]},
        o["shrub_herbaceous"]: {d["grass"], d["shrub_and_scrub"]},
        o["permanent_crops"]: {d["trees"], d["crops"]},
        o["wetlands"]: {d["flooded_vegetation"]},
        o["coastal_wetlands"]: {d["water"], d["flooded_vegetation"]},
    }
    assert load_many_to_many("osm_to_dw") == {k: frozenset(v) for k, v in expected.items()}
    # and the OSM ids follow the WMS legend order of cromss §6
    assert (o["urban_fabric"], o["arable_land"], o["forests"], o["water_bodies"], o["coastal_wetlands"]) == (
        0, 1, 2, 8, 12,
    )


def test_igbp_to_dfc2020_spot_checks() -> None:
    m = load_mapping("igbp_to_dfc2020")
    assert set(m) == set(range(1, 18))
    assert all(m[i] == 1 for i in range(1, 6))  # forests -> Forest
    assert m[7] == 2 and m[9] == 3 and m[10] == 4 and m[11] == 5
    assert m[12] == 6 and m[14] == 6  # croplands and the cropland mosaic -> Croplands
    assert m[13] == 7 and m[15] == 8 and m[16] == 9 and m[17] == 10


def test_dfc2020_to_dw_and_chesapeake_to_lsr4() -> None:
    # cromss §6: 1→1, 2→5, 4→2, 5→3, 6→4, 7→6, 9→7, 10→0, savanna and snow → 8
    assert load_mapping("dfc2020_to_dw") == {1: 1, 2: 5, 3: 8, 4: 2, 5: 3, 6: 4, 7: 6, 8: 8, 9: 7, 10: 0}
    # real/chesapeake_wv/README.md: water←1, forest←2, field←3,4, impervious←5,6; 15 no data
    assert load_mapping("chesapeake_to_lsr4") == {1: 0, 2: 1, 3: 2, 4: 2, 5: 3, 6: 3, 15: UNLABELLED}
    # the scored DFC classes (ids 0..7 of dfc2020) are exactly the DW-like ids of the 8 kept classes
    kept = {k: v for k, v in load_mapping("dfc2020_to_dw").items() if k not in (3, 8)}
    assert sorted(kept.values()) == list(load_schema("dfc2020").ids)


def test_validate_labels_catches_out_of_schema_id() -> None:
    dw = load_schema("dw")
    dw.validate_labels(np.array([[0, 8], [255, 3]], dtype=np.uint8), where="ok.tif")
    with pytest.raises(ValueError, match=r"tile_7\.tif: label id 9 "):
        dw.validate_labels(np.array([[0, 9], [255, 3]], dtype=np.uint8), where="tile_7.tif")
    with pytest.raises(ValueError, match=r"label id 255"):
        dw.validate_labels(np.array([1, 255]), ignore_index=None, where="no-ignore")
    nlcd = load_schema("nlcd")
    with pytest.raises(ValueError, match=r"coarse\.tif: label id 13 "):
        nlcd.validate_labels(np.array([11, 13, 41]), where="coarse.tif")
    with pytest.raises(ValueError, match="integer"):
        dw.validate_labels(np.array([0.5]), where="float.tif")


def test_listed_colormap_and_index_of() -> None:
    pytest.importorskip("matplotlib")
    ches = load_schema("chesapeake")
    cmap = ches.listed_colormap()
    assert cmap.N == 7
    np.testing.assert_allclose(cmap(ches.index_of(15))[:3], ches.rgb()[6])
    with pytest.raises(ValueError, match="id 7 is not a class"):
        ches.index_of(7)


def test_schema_dataclass_rejects_inconsistent_fields() -> None:
    with pytest.raises(ValueError, match="equally long"):
        ClassSchema("x", (0, 1), ("a",), ("#000000", "#ffffff"))
    with pytest.raises(ValueError, match="reserved"):
        ClassSchema("x", (255,), ("a",), ("#000000",))


def _write(d: Path, name: str, text: str) -> None:
    (d / f"{name}.csv").write_text(text, encoding="utf-8")


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("lsr4", "id,name,color\n0,water,#0000ff\n0,forest,#008000\n", r"lsr4\.csv, line 3: duplicate id 0"),
        ("lsr4", "id,name,color\n0,water,blue\n", r"lsr4\.csv, line 2: colour 'blue'"),
        ("lsr4", "id,name,color\n0,water,#00f\n", r"lsr4\.csv, line 2: colour '#00f'"),
        ("lsr4", "id,name,colour\n0,water,#0000ff\n", r"lsr4\.csv: schema columns .* missing \['color'\]"),
        (
            "lsr4",
            "id,name,color\nzero,water,#0000ff\n",
            r"lsr4\.csv, line 2, column 'id': 'zero' is not an integer",
        ),
        ("lsr4", "id,name,color\n0,water\n", r"lsr4\.csv, line 2: 2 fields, header has 3"),
        ("lsr4", "", r"lsr4\.csv: empty file"),
        (
            "nlcd_to_lsr4_prob",
            "nlcd_id,lsr4.water,lsr4.forest,lsr4.field,lsr4.impervious\n11,0.97,x,0.01,0.02\n",
            r"nlcd_to_lsr4_prob\.csv, line 2, column 'lsr4.forest': 'x' is not a number",
        ),
        (
            "nlcd_to_lsr4_prob",
            "nlcd_id,lsr4.water,lsr4.forest,lsr4.field,lsr4.impervious\n11,0.97,0.01,0.01,0.02\n",
            r"nlcd_to_lsr4_prob\.csv: no row for source ids \[12, ",
        ),
        (
            "nlcd_to_lsr4_prob",
            "nlcd_id,lsr4.water,lsr4.forest,lsr4.fields,lsr4.impervious\n11,0.97,0.01,0.01,0.02\n",
            r"nlcd_to_lsr4_prob\.csv: columns must name each class .* unknown \['fields'\]",
        ),
        (
            "igbp_to_dfc2020",
            "igbp_id,dfc2020_original_id\n1,1\n1,2\n",
            r"igbp_to_dfc2020\.csv, line 3: source id 1 is mapped twice",
        ),
        (
            "igbp_to_dfc2020",
            "igbp_id,dfc2020_original_id\n18,1\n",
            r"igbp_to_dfc2020\.csv, line 2: source id 18 is not a class of 'igbp'",
        ),
        (
            "dfc2020_to_dw",
            "dfc2020_original_id,dw_id\n1,9\n",
            r"dfc2020_to_dw\.csv, line 2: target id 9 is neither a class of 'dw'",
        ),
        (
            "osm_to_dw",
            "osm_id,dw_id\n0,6\n0,6\n",
            r"osm_to_dw\.csv, line 3: duplicate pair \(0, 6\)",
        ),
        ("osm_to_dw", "osm_id,dw_id\n0,6\n", r"osm_to_dw\.csv: no row for source ids \[1, 2, "),
        ("osm_to_dw", "osm,dw_id\n0,6\n", r"osm_to_dw\.csv: column 'osm' must be named '<schema>_id'"),
    ],
)
def test_bad_files_give_errors_naming_the_file(tmp_tables: Path, name: str, text: str, message: str) -> None:
    _write(tmp_tables, name, text)
    loader = {
        "lsr4": load_schema,
        "nlcd_to_lsr4_prob": lambda n, d: load_transfer_matrix(n, d, row_sums="as_listed"),
        "igbp_to_dfc2020": load_mapping,
        "dfc2020_to_dw": load_mapping,
        "osm_to_dw": load_many_to_many,
    }[name]
    with pytest.raises(TableError, match=message):
        loader(name, tmp_tables)


def test_probability_row_far_from_one_is_refused_even_when_rounded(tmp_tables: Path) -> None:
    path = tmp_tables / "nlcd_to_lsr4_prob.csv"
    # a typo .79 for .97 makes row 11 sum to 0.83: no tolerance for rounding accepts that
    path.write_text(path.read_text().replace("11,0.97,", "11,0.79,"))
    with pytest.raises(TableError, match=r"nlcd_to_lsr4_prob\.csv, line 2: row nlcd_id=11 sums to 0\.83"):
        load_transfer_matrix("nlcd_to_lsr4_prob", tmp_tables, row_sums="renormalize")


def test_missing_table_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"no_such_table\.csv not found"):
        load_mapping("no_such_table", tmp_path)


def test_transfer_table_naming_missing_schema_fails(tmp_tables: Path) -> None:
    (tmp_tables / "dw.csv").unlink()
    with pytest.raises(FileNotFoundError, match=r"dw\.csv not found"):
        load_many_to_many("osm_to_dw", tmp_tables)


def test_lookup_table_maps_ids_and_leaves_the_rest_unlabelled():
    import numpy as np

    from eolabels.tables import UNLABELLED, lookup_table

    lut = lookup_table({1: 0, 2: 0, 5: 3})
    assert lut.dtype == np.uint8 and lut.shape == (256,)
    labels = np.array([[1, 2], [5, 7]], dtype=np.uint8)
    assert lut[labels].tolist() == [[0, 0], [3, UNLABELLED]]
    assert lookup_table({1: 4}, np.int64).dtype == np.int64
