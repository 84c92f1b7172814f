"""LSR variants on the real Chesapeake WV patches read through the ``lsr`` dataset index, reduced size.

The patches are imported by the data layer (``eolabels.data.local.import_chesapeake``) into a temp
dir, read in place from ../shared/real; the full-size run is the workflow on config/real_chesapeake.yaml.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from eolabels.data.local import import_chesapeake
from eolabels.epitome.evaluate import POOLED, score_variants
from eolabels.epitome.stages import load_tiles, load_transfer
from eolabels.epitome.settings import (
    ColourSettings,
    EMSettings,
    EmbedSettings,
    EpitomeSettings,
    ReconstructSettings,
    SelfEpitomicSettings,
)
from eolabels.epitome.variants import (
    embed_coarse,
    epitome_label_probs,
    predict_colour,
    predict_epitome,
    predict_naive,
    predict_self_epitomic,
    train_all_tile_epitome,
)

pytestmark = pytest.mark.real
SIZE = 48
TABLE = {"kind": "file", "name": "nlcd_to_lsr4_prob"}  # config/tables = spec §10, used as listed (§6)


@pytest.fixture(scope="module")
def chesapeake(real_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("chesapeake")
    import_chesapeake(real_dir / "chesapeake_wv" / "patches", root)
    tiles = load_tiles(root, {"image_scale": 255})
    transfer = load_transfer(root, TABLE, tiles)
    small = [
        dataclasses.replace(t, image=t.image[:, :SIZE, :SIZE], coarse=t.coarse[:SIZE, :SIZE], truth=t.truth[:SIZE, :SIZE])
        for t in tiles
    ]
    return small, transfer


def test_naive_baseline_matches_the_raw_archives(chesapeake, real_dir):
    tiles, transfer = chesapeake
    assert len(tiles) == 8 and float(tiles[0].image.max()) <= 1.0
    path = sorted((real_dir / "chesapeake_wv" / "patches").glob("*.npz"))[0]
    raw = np.load(path)["arr_0"][0, :, :SIZE, :SIZE]
    fine = np.vectorize({1: 0, 2: 1, 3: 2, 4: 2, 5: 3, 6: 3, 15: 255}.get)(raw[8].astype(int))
    row = {code: i for i, code in enumerate(transfer.coarse_codes)}
    naive = transfer.table.numpy().argmax(1)[np.vectorize(row.get)(raw[9].astype(int))]
    valid = fine != 255
    tile = next(t for t in tiles if t.name == path.stem)
    scores = score_variants([tile], {"naive": predict_naive([tile], transfer)}, ["w", "f", "g", "i"])
    assert scores.iloc[0].OA == pytest.approx(float((naive[valid] == fine[valid]).mean()))


def test_every_variant_runs_on_real_patches(chesapeake):
    tiles, transfer = chesapeake
    tiles = tiles[:3]
    epitome, _ = train_all_tile_epitome(
        tiles, EpitomeSettings(side=24, iterations=3, batch_size=16, patch_sizes=(7,)), seed=0, progress=False
    )
    lrmap = embed_coarse(epitome, tiles, transfer, EmbedSettings(patch_size=7, samples=128), 0)
    probs = epitome_label_probs(lrmap, transfer, EMSettings(), 0)
    maps = {
        "naive": predict_naive(tiles, transfer),
        "colour": predict_colour(tiles, transfer, ColourSettings(components=6, pooled=False), 0),
        "self_epitomic": predict_self_epitomic(tiles, transfer, SelfEpitomicSettings(samples=256), EMSettings(), 0),
        "epitome": predict_epitome(epitome, probs, tiles, 7, ReconstructSettings(stride=7), 0),
    }
    scores = score_variants(tiles, maps, ["water", "forest", "field", "impervious"])
    assert len(scores) == 4 * (3 + 1) and set(scores[scores.tile == POOLED].variant) == set(maps)
    assert scores[["OA", "mIoU", "mIoU_present"]].apply(lambda c: c.between(0, 1).all()).all()
    assert all(m.shape == (SIZE, SIZE) and int(m.max()) < 4 for ms in maps.values() for m in ms)
    assert torch.all(probs.sum(0).sub(1).abs() < 1e-9)
