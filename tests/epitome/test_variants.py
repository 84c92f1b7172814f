"""LSR variants over several tiles (epitome/variants.py): pooled colour model, naive, all-tile epitome."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from eolabels.data.geotiff import GridSpec
from eolabels.epitome.data import LabelledTile
from eolabels.epitome.transfer import LabelTransfer
from eolabels.epitome.settings import ColourSettings, EMSettings, EmbedSettings, EpitomeSettings, ReconstructSettings
from eolabels.epitome.variants import (
    embed_coarse,
    epitome_label_probs,
    predict_colour,
    predict_epitome,
    predict_naive,
    train_all_tile_epitome,
)

COLOURS = torch.tensor([[0.1, 0.2, 0.7], [0.1, 0.6, 0.1]])  # fine class 0, 1


def tiles_and_transfer(sizes=((16, 20), (12, 12))):
    """Halves of class 0 / class 1 with class-determined colours; the coarse code says the class (10, 20)."""
    g = torch.Generator().manual_seed(0)
    tiles = []
    for k, (h, w) in enumerate(sizes):
        fine = (torch.arange(w) >= w // 2).long().expand(h, w).clone()
        image = COLOURS[fine].permute(2, 0, 1) + 0.02 * torch.randn(3, h, w, generator=g)
        tiles.append(LabelledTile(f"t{k}", image, 10 + 10 * fine, fine, GridSpec("", (1.0, 0, 0, 0, 1.0, 0), h, w)))
    table = torch.tensor([[0.9, 0.1], [0.2, 0.8]], dtype=torch.float64)
    return tiles, LabelTransfer(table, (10, 20), "lsr4", "hand table")


def test_naive_and_pooled_colour_keep_tile_shapes():
    tiles, transfer = tiles_and_transfer()
    naive = predict_naive(tiles, transfer)
    assert all(torch.equal(m, t.truth) for m, t in zip(naive, tiles))
    pooled = predict_colour(tiles, transfer, ColourSettings(components=2, pooled=True), seed=0)
    assert [m.shape for m in pooled] == [(16, 20), (12, 12)]
    assert all(torch.equal(m, t.truth) for m, t in zip(pooled, tiles))


def test_all_tile_epitome_resumes_and_reconstructs(tmp_path):
    tiles, transfer = tiles_and_transfer(((16, 16), (16, 16)))
    settings = EpitomeSettings(side=8, iterations=4, batch_size=8, patch_sizes=(3,), checkpoint_every=2)
    checkpoint = tmp_path / "ckpt.pt"
    straight, _ = train_all_tile_epitome(tiles, settings, seed=1, progress=False)
    train_all_tile_epitome(tiles, replace(settings, iterations=2), 1, checkpoint=checkpoint, progress=False)
    resumed, history = train_all_tile_epitome(tiles, settings, seed=1, checkpoint=checkpoint, progress=False)
    assert len(history.loss) == 4 and torch.allclose(resumed.mean, straight.mean)
    # a checkpoint from a longer run is not resumed into a shorter one
    shorter, history = train_all_tile_epitome(
        tiles, replace(settings, iterations=3), 1, checkpoint=checkpoint, progress=False
    )
    assert len(history.loss) == 3
    embed = EmbedSettings(patch_size=3, samples=64, batch_size=16)
    probs = epitome_label_probs(embed_coarse(resumed, tiles, transfer, embed, 0), transfer, EMSettings(), 0)
    assert probs.shape == (2, 1, 8, 8)
    maps = predict_epitome(resumed, probs, tiles, 3, ReconstructSettings(stride=3), 0)
    assert [m.shape for m in maps] == [(16, 16), (16, 16)] and int(max(m.max() for m in maps)) <= 1


def test_finished_checkpoint_is_not_reused_when_the_job_reruns(tmp_path):
    """Snakemake re-runs a finished job only when something changed (here: the tiles); the epitome
    must then be trained afresh on the new tiles, equal to a fresh run with the same seed."""
    tiles, _ = tiles_and_transfer(((16, 16), (16, 16)))
    mirrored = [replace(t, image=t.image.flip(-1).contiguous()) for t in tiles]
    settings = EpitomeSettings(side=8, iterations=3, batch_size=8, patch_sizes=(3,), checkpoint_every=1)
    checkpoint = tmp_path / "ckpt.pt"
    train_all_tile_epitome(tiles, settings, seed=1, checkpoint=checkpoint, progress=False)  # finished run
    rerun, history = train_all_tile_epitome(mirrored, settings, seed=1, checkpoint=checkpoint, progress=False)
    fresh, _ = train_all_tile_epitome(mirrored, settings, seed=1, progress=False)
    assert len(history.loss) == 3
    assert torch.allclose(rerun.mean, fresh.mean)


def test_individually_trained_layers_are_separate_runs_stacked(tmp_path):
    """layer_training=individual (the paper's 8 epitomes, spec §4): layer l equals a one-layer run with
    seed + l; the history is the runs' histories one after the other."""
    tiles, _ = tiles_and_transfer(((16, 16), (16, 16)))
    single = EpitomeSettings(side=8, iterations=3, batch_size=8, patch_sizes=(3,), checkpoint_every=1)
    both = replace(single, layers=2, layer_training="individual")
    stacked, history = train_all_tile_epitome(tiles, both, seed=5, progress=False)
    runs = [train_all_tile_epitome(tiles, single, seed=5 + layer, progress=False) for layer in range(2)]
    assert stacked.shape == (2, 3, 8, 8)  # RGB tiles
    for layer, (epitome, run_history) in enumerate(runs):
        assert torch.equal(stacked.mean[layer], epitome.mean[0])
        assert torch.equal(stacked.ivar[layer], epitome.ivar[0])
        assert torch.equal(stacked.prior_logits[layer], epitome.prior_logits[0])
        assert history.loss[3 * layer : 3 * layer + 3] == run_history.loss
    # jointly trained layers are a different model
    joint, _ = train_all_tile_epitome(tiles, replace(both, layer_training="joint"), 5, progress=False)
    assert not torch.equal(joint.mean, stacked.mean)
    with pytest.raises(ValueError, match="layer_training"):
        EpitomeSettings(side=8, iterations=1, patch_sizes=(3,), layer_training="sequential")


def test_individual_layers_resume_after_an_interruption(tmp_path):
    from eolabels.epitome.variants import checkpoint_files, layer_checkpoint

    tiles, _ = tiles_and_transfer(((16, 16), (16, 16)))
    mirrored = [replace(t, image=t.image.flip(-1).contiguous()) for t in tiles]
    settings = EpitomeSettings(side=8, iterations=4, batch_size=8, patch_sizes=(3,), checkpoint_every=1, layers=2,
                               layer_training="individual")
    single = replace(settings, layers=1, layer_training="joint")
    checkpoint = tmp_path / "ckpt.pt"
    assert checkpoint_files(checkpoint, settings) == [tmp_path / "ckpt.layer0.pt", tmp_path / "ckpt.layer1.pt"]
    # interrupted job: layer 0 finished (marked by training it on mirrored tiles), layer 1 stopped after 2 iterations
    layer0, _ = train_all_tile_epitome(mirrored, single, 1, checkpoint=layer_checkpoint(checkpoint, 0), progress=False)
    train_all_tile_epitome(tiles, replace(single, iterations=2), 2, checkpoint=layer_checkpoint(checkpoint, 1),
                           progress=False)
    resumed, history = train_all_tile_epitome(tiles, settings, seed=1, checkpoint=checkpoint, progress=False)
    straight, _ = train_all_tile_epitome(tiles, settings, seed=1, progress=False)
    assert torch.equal(resumed.mean[0], layer0.mean[0])  # the finished layer was reused, not retrained
    assert torch.allclose(resumed.mean[1], straight.mean[1])  # the interrupted one resumed exactly
    assert len(history.loss) == 8
    # every layer finished: the job re-ran because something changed, so all layers start over
    rerun, _ = train_all_tile_epitome(tiles, settings, seed=1, checkpoint=checkpoint, progress=False)
    assert torch.allclose(rerun.mean, straight.mean)


def test_a_truncated_checkpoint_is_logged_and_training_starts_over(tmp_path, caplog):
    tiles, _ = tiles_and_transfer(((16, 16), (16, 16)))
    settings = EpitomeSettings(side=8, iterations=4, batch_size=8, patch_sizes=(3,), checkpoint_every=2)
    checkpoint = tmp_path / "ckpt.pt"
    fresh, _ = train_all_tile_epitome(tiles, settings, seed=1, progress=False)
    train_all_tile_epitome(tiles, replace(settings, iterations=2), 1, checkpoint=checkpoint, progress=False)
    checkpoint.write_bytes(checkpoint.read_bytes()[:500])
    with caplog.at_level("WARNING", logger="eolabels.epitome.variants"):
        restarted, history = train_all_tile_epitome(tiles, settings, seed=1, checkpoint=checkpoint, progress=False)
    assert any(f"not resuming from {checkpoint}" in r.getMessage() for r in caplog.records)
    assert len(history.loss) == 4 and torch.equal(restarted.mean, fresh.mean)
