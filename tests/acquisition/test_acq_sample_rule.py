"""Rule sample_locations through Snakemake: a sheet of n seeded points inside a GeoJSON polygon or bbox
that validates as a location sheet, is the same for the same seed and another for another seed, and
drives the acquisition as its sheet."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from workflow_helpers import snakemake

from eolabels.acquisition.sheets import read_locations

pytestmark = pytest.mark.slow
N = 40
# an L: the square [10, 10.2] × [45, 45.2] less its north-east quarter (10.1, 10.2] × (45.1, 45.2]
L_SHAPE = {"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": [[
    [10.0, 45.0], [10.2, 45.0], [10.2, 45.1], [10.1, 45.1], [10.1, 45.2], [10.0, 45.2], [10.0, 45.0]]]}}
BBOX = {"type": "Feature", "properties": {}, "bbox": [-3.5, 40.2, -3.4, 40.3], "geometry": None}
SHEETS = ("results/acquisition/sheets/lshape.csv", "results/acquisition/sheets/box.csv")


def write_config(root, name: str, source: dict | None = None, **earthengine) -> list[str]:
    (root / name).write_text(yaml.safe_dump({"earthengine": earthengine, **({"source": source} if source else {})}))
    return ["--configfile", name]


def in_l_shape(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    square = (lon >= 10.0) & (lon <= 10.2) & (lat >= 45.0) & (lat <= 45.2)
    return square & ~((lon > 10.1) & (lat > 45.1))


def points(root, sheet: str) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The sheet read through the location-sheet validation (it raises on any malformed row)."""
    locs = read_locations(root / sheet)
    return [loc.id for loc in locs], np.array([loc.lon for loc in locs]), np.array([loc.lat for loc in locs])


def test_sample_locations_rule_is_seeded_and_stays_in_the_region(workflow_copy):
    root = workflow_copy
    (root / "config/regions/lshape.geojson").write_text(json.dumps(L_SHAPE))
    (root / "config/regions/box.geojson").write_text(json.dumps(BBOX))
    seed7 = write_config(root, "seed7.yaml", sample={"n": N, "seed": 7})
    snakemake(root, *SHEETS, *seed7)

    ids, lon, lat = points(root, SHEETS[0])
    assert ids == [f"lshape_{i:02d}" for i in range(N)]
    assert in_l_shape(lon, lat).all() and len(set(zip(lon, lat))) == N
    # uniform over the L: each of its three quarters gets some of the 40 points
    quarters = {(bool(x > 10.1), bool(y > 45.1)) for x, y in zip(lon, lat)}
    assert quarters == {(False, False), (True, False), (False, True)}
    ids_box, lon_box, lat_box = points(root, SHEETS[1])
    assert ids_box == [f"box_{i:02d}" for i in range(N)]
    assert ((lon_box >= -3.5) & (lon_box <= -3.4) & (lat_box >= 40.2) & (lat_box <= 40.3)).all()

    # the same seed, forced to run again: a new file with the same bytes
    before = [(root / s).read_bytes() for s in SHEETS]
    inodes = [(root / s).stat().st_ino for s in SHEETS]
    snakemake(root, *SHEETS, "--forcerun", "sample_locations", *seed7)
    assert [(root / s).stat().st_ino for s in SHEETS] != inodes
    assert [(root / s).read_bytes() for s in SHEETS] == before

    # another seed: Snakemake reruns the rule for the changed parameter, and the points differ
    snakemake(root, SHEETS[0], *write_config(root, "seed8.yaml", sample={"n": N, "seed": 8}))
    ids8, lon8, lat8 = points(root, SHEETS[0])
    assert ids8 == ids and in_l_shape(lon8, lat8).all()
    assert not np.isin(lon8, lon).any()

    # the sampled sheet is a sheet the acquisition takes: one shard job per shard, fed by it
    acquire = write_config(root, "acq.yaml", source={"noldo": "earthengine"}, transport="replay",
                           responses="responses", shards=2, noldo={"sheet": SHEETS[0], "tile_size": 16})
    dry = snakemake(root, "-n", "results/data/noldo_raw/index.csv", *acquire).stdout
    assert dry.count("rule acquire_shard:") == 2 and f"input: {SHEETS[0]}" in dry
