"""Dataset contracts: every kind written by the synthetic world and read back, layer by layer, by role."""

import numpy as np
import pytest

from eolabels.data.index import DatasetIndex, IndexError_
from eolabels.data.kinds import KINDS, LSR, NOLDO, OSM, OSM_LABELS, dataset_kind
from eolabels.data.readers import TileReader
from eolabels.data.stages import filter_osm
from eolabels.data.synthetic import generate_dataset
from eolabels.tables import load_schema

TINY = {
    "noldo": {"n_locations": 1, "tile_size": 16},
    "dw": {"n_train": 3, "n_test": 1, "tile_size": 16},
    "osm": {"dw_tiles": {"n_train": 3, "n_test": 1, "tile_size": 16}},
    "dfc2020": {"n_validation": 1, "n_test": 1, "patch_size": 16, "modis_block": 8},
    "lsr": {"n_tiles": 1, "tile_size": 60, "block": 30},
}


def _write_kind(root, name):
    """A dataset of kind ``name``: generated, or (osm) the filter's choice of generated DW tiles."""
    generators = {"osm_labels": "osm"}
    if name != "osm":
        generate_dataset(generators.get(name, name), root / name, TINY[generators.get(name, name)], seed=0)
        return
    generate_dataset("dw", root / "dw", TINY["dw"], seed=0)
    generate_dataset("osm", root / "osm_raw", TINY["osm"], seed=0)
    out = root / "filtered"
    filter_osm(
        dw_dir=root / "dw", osm_dir=root / "osm_raw", role="label", out_dir=root / name,
        agreement=out / "a.csv", table=out / "t.csv", table_md=out / "t.md", histogram=out / "h.png",
        settings={"threshold": 0.0, "sweep": [0.5], "test_tiles": 1, "pad_moved_tiles": False}, seed=0,
    )


def _query(spec):
    """The narrowest role query for a layer: images by modality, labels by schema."""
    return {"modality": spec.modality} if spec.role == "image" else {"schema": spec.schema}


@pytest.mark.parametrize("name", sorted(KINDS))
def test_each_kind_is_written_by_its_contract_and_read_by_role(tmp_path, name):
    kind = dataset_kind(name)
    _write_kind(tmp_path, name)
    index = DatasetIndex.open(tmp_path / name)
    assert index.meta.name == name and index.meta.layers == dict(kind.layers)
    assert index.meta.seasons == kind.seasons
    assert set(index.table["split"]) <= set(kind.splits)
    with TileReader(index) as reader:
        for layer, spec in kind.layers.items():
            assert index.meta.layer(spec.role, **_query(spec)) == layer
            data = reader.read(0, [layer])[layer]
            assert data.dtype == np.dtype(spec.dtype) and data.shape[0] == len(spec.bands)
            if spec.schema:
                allowed = set(load_schema(spec.schema).ids) | {int(spec.nodata)}
                assert set(np.unique(data).tolist()) <= allowed


def test_roles_of_each_kind():
    # the roles the stages ask for resolve to one layer each, as the stages expect
    assert NOLDO.meta(source="t", description="").layer("label") == "dw"
    assert LSR.meta(source="t", description="").layer("coarse_label") == "nlcd"
    assert KINDS["dfc2020"].meta(source="t", description="").layer("coarse_label") == "modis"
    osm = OSM.meta(source="t", description="")
    assert osm.layer("truth") == "osm_registered" and osm.layer("displacement") == "displacement"
    assert osm.layer("label", schema="dw") == "dw"
    with pytest.raises(IndexError_, match=r"found several: \['osm', 'dw'\]"):
        osm.layer("label")
    with pytest.raises(IndexError_, match="found none"):
        NOLDO.meta(source="t", description="", layers=("s2", "dw")).layer("truth")
    labels = OSM_LABELS.meta(source="t", description="")
    assert labels.layer("label") == "osm" and labels.layer("truth", schema="osm") == "osm_registered"
    assert not labels.has_layer("image")


def test_a_source_may_leave_out_optional_layers_only():
    single = NOLDO.meta(source="local:x", description="", layers=("s2", "dw"), seasons=("summer",))
    assert list(single.layers) == ["s2", "dw"] and single.seasons == ("summer",)
    with pytest.raises(IndexError_, match=r"missing required layers \['dw'\]"):
        NOLDO.meta(source="t", description="", layers=("s2",))
    with pytest.raises(IndexError_, match=r"unknown layers \['rgb'\]"):
        LSR.meta(source="t", description="", layers=("image", "nlcd", "truth", "rgb"))


def test_unknown_kind_lists_the_kinds():
    with pytest.raises(KeyError, match="kinds: \\['dfc2020', 'dw', 'lsr', 'noldo', 'osm', 'osm_labels'\\]"):
        dataset_kind("sen12ms")


def test_a_dataset_of_another_layout_version_fails_naming_the_fix(tmp_path):
    import json

    generate_dataset("lsr", tmp_path / "lsr", TINY["lsr"], seed=0)
    meta_path = tmp_path / "lsr" / "dataset.json"
    meta = json.loads(meta_path.read_text())
    assert meta["layout_version"] == 2
    del meta["layout_version"]  # as written before roles and modalities were recorded
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(IndexError_, match=r"dataset.json: .*layout version 1.*--forcerun acquire_synthetic"):
        DatasetIndex.open(tmp_path / "lsr")
