"""Location sheets: validation naming the row, and region sampling."""

from __future__ import annotations

import numpy as np
import pytest

from eolabels.acquisition.sheets import SheetError, inside, read_dw_tiles, read_locations, sample_locations


def sheet(tmp_path, text: str):
    path = tmp_path / "sheet.csv"
    path.write_text(text)
    return path


def test_valid_sheet_with_optional_columns(tmp_path):
    locs = read_locations(sheet(tmp_path, "id,lon,lat,tile_size,crs,date,split\n"
                                          "a,10.5,47.25,264,,2021-05-03,train\nb,-75.6,37.67,,EPSG:32618,,test\n"))
    assert [(l.id, l.lon, l.lat, l.tile_size, l.crs, l.date, l.split) for l in locs] == [
        ("a", 10.5, 47.25, 264, None, "2021-05-03", "train"), ("b", -75.6, 37.67, None, "EPSG:32618", None, "test")]


@pytest.mark.parametrize("text, words", [
    ("id,lon\na,1\n", ["missing columns ['lat']"]),
    ("id,lon,lat\na,1,2\nb,3,4\na,5,6\n", ["row 3", "duplicate id 'a'", "first at row 1"]),
    ("id,lon,lat\na,1,2\nb,181,4\n", ["row 2", "lon '181'", "out of range"]),
    ("id,lon,lat\na,1,-90.5\n", ["row 1", "lat '-90.5'"]),
    ("id,lon,lat\na,east,2\n", ["row 1", "lon 'east' is not a number"]),
    ("id,lon,lat,crs\na,1,2,utm\n", ["row 1", "crs 'utm'"]),
    ("id,lon,lat,date\na,1,2,yesterday-ish\n", ["row 1", "date"]),
    ("id,lon,lat,colour\na,1,2,red\n", ["unknown columns ['colour']"]),
    ("id,lon,lat\n", ["no rows"]),
    ("id,lon,lat\na b,1,2\n", ["row 1", "id 'a b'"]),
])
def test_malformed_sheet_names_the_row(tmp_path, text, words):
    path = sheet(tmp_path, text)
    with pytest.raises(SheetError) as err:
        read_locations(path)
    assert str(path) in str(err.value)
    for word in words:
        assert word in str(err.value)


def test_dw_tile_sheet(tmp_path):
    tiles = read_dw_tiles(sheet(tmp_path, "dw_id,epsg,left,bottom,right,top,split,date,s2_system_index\n"
                                          "dw_-75.6_37.6-20190612,32618,440000,4160000,445100,4165100,train,2019-06-12,\n"
                                          "t1,32618,440000,4160000,445120,4165120,test,,20190612T155819_20190612T160611_T18SVG\n"))
    assert tiles[0].bounds == (440000, 4160000, 445100, 4165100) and tiles[1].s2_system_index.startswith("20190612")
    with pytest.raises(SheetError, match="row 1: bounds"):
        read_dw_tiles(sheet(tmp_path, "dw_id,epsg,left,bottom,right,top,split,date\nx,32618,5,0,1,1,train,2019-01-01\n"))
    with pytest.raises(SheetError, match="row 1: needs a date or an s2_system_index"):
        read_dw_tiles(sheet(tmp_path, "dw_id,epsg,left,bottom,right,top,split\nx,32618,0,0,1,1,train\n"))


def test_point_in_polygon_by_hand():
    # an L-shaped ring: the notch (1.5, 1.5) is outside, (0.5, 1.5) and (1.5, 0.5) are inside
    ring = [(0, 0), (2, 0), (2, 1), (1, 1), (1, 2), (0, 2), (0, 0)]
    got = inside(ring, np.array([1.5, 0.5, 1.5, 3.0]), np.array([1.5, 1.5, 0.5, 0.5]))
    assert got.tolist() == [False, True, True, False]


def test_sampling_stays_in_region_and_is_seeded():
    region = {"type": "Feature", "geometry": {"type": "Polygon",
              "coordinates": [[[0, 0], [2, 0], [2, 1], [1, 1], [1, 2], [0, 2], [0, 0]]]}}
    a = sample_locations(region, 200, seed=3)
    b = sample_locations(region, 200, seed=3)
    assert a.equals(b) and len(a) == 200 and a["id"].is_unique and a["id"][0] == "loc000"
    assert not ((a["lon"] > 1) & (a["lat"] > 1)).any()
    assert not sample_locations(region, 200, seed=4).equals(a)
    bbox = sample_locations({"bbox": [10, 40, 11, 41]}, 50, seed=0)
    assert bbox["lon"].between(10, 11).all() and bbox["lat"].between(40, 41).all()
