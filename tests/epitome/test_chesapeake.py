"""LSR variants on the real Chesapeake WV patches, reduced size (the full run is reported in issue notes)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from eolabels.epitome.chesapeake import VariantSettings, evaluate_lsr_variants, load_chesapeake_tiles
from eolabels.tables import load_mapping, load_transfer_matrix

pytestmark = pytest.mark.real


@pytest.fixture(scope="module")
def nlcd_table():
    # config/tables/nlcd_to_lsr4_prob.csv = spec §10, used as listed (rows not renormalised, spec §6)
    matrix, nlcd_codes, _ = load_transfer_matrix("nlcd_to_lsr4_prob", row_sums="as_listed")
    return torch.from_numpy(matrix), nlcd_codes


def test_lsr_variants_on_real_patches(real_dir, nlcd_table):
    table, codes = nlcd_table
    fine_to_lsr = load_mapping("chesapeake_to_lsr4")
    tiles = load_chesapeake_tiles(real_dir / "chesapeake_wv", fine_to_lsr, codes, size=48)
    assert len(tiles) == 8 and tiles[0].image.shape == (4, 48, 48)
    assert float(tiles[0].image.max()) <= 1.0
    settings = VariantSettings(
        self_samples=256, colour_components=6, epitome_side=24, epitome_iterations=3,
        epitome_batch_size=16, epitome_patch_sizes=(7,), embed_patch_size=7, embed_samples=128,
        reconstruct_stride=7,
    )
    scores = evaluate_lsr_variants(tiles[:3], table, settings)
    assert set(scores["variant"]) == {"naive", "colour", "self_epitomic", "epitome"}
    assert len(scores) == 4 * (3 + 1)
    assert scores[["OA", "mIoU", "mIoU_present"]].apply(lambda c: c.between(0, 1).all()).all()
    assert (scores["mIoU_present"] <= scores["mIoU"] + 1e-12).all()

    # The naive baseline, recomputed independently from the raw archives.
    path = sorted((real_dir / "chesapeake_wv" / "patches").glob("*.npz"))[0]
    raw = np.load(path)["arr_0"][0, :, :48, :48]
    fine = np.vectorize({1: 0, 2: 1, 3: 2, 4: 2, 5: 3, 6: 3, 15: 255}.get)(raw[8].astype(int))
    row = {code: i for i, code in enumerate(codes)}
    naive = table.numpy().argmax(1)[np.vectorize(row.get)(raw[9].astype(int))]
    valid = fine != 255
    expected_oa = float((naive[valid] == fine[valid]).mean())
    got = scores[(scores.variant == "naive") & (scores.tile == path.stem)]["OA"].item()
    assert got == pytest.approx(expected_oa)
