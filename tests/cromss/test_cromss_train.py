import csv

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from eolabels.cromss.smoothing import spatial_prior
from eolabels.cromss.train import PretrainConfig, PretrainTrainer, split_train_val, variant_config


class TinyNoisyLabelSet(Dataset):
    """In-memory stand-in for the pretraining reader: imagery that follows the labels, a random
    flip drawn from torch's global RNG (so a resume must restore it), and the label prior."""

    def __init__(self, n: int = 13, size: int = 32, s2_bands: int = 13, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        blocks = torch.randint(0, 9, (n, size // 8, size // 8), generator=g)
        self.label = blocks.repeat_interleave(8, 1).repeat_interleave(8, 2)
        signal = self.label.float().unsqueeze(1) / 8
        self.s1 = signal + 0.3 * torch.rand(n, 2, size, size, generator=g)
        self.s2 = signal + 0.3 * torch.rand(n, s2_bands, size, size, generator=g)
        self.prior = torch.from_numpy(np.stack([spatial_prior(y.numpy()) for y in self.label]))

    def __len__(self) -> int:
        return len(self.label)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        sample = {"s1": self.s1[i], "s2": self.s2[i], "label": self.label[i], "prior": self.prior[i]}
        if torch.rand(()) < 0.5:
            sample = {k: v.flip(-1) for k, v in sample.items()}
        return sample


def _config(**overrides) -> PretrainConfig:
    settings = dict(encoder_name="tu-mobilenetv3_small_050", batch_size=4, val_batch_size=1, val_fraction=0.01,
                    epochs=2, lr=1e-3, checkpoint_every=1)
    return variant_config(overrides.pop("variant", "cromss_midF"), **{**settings, **overrides})


def test_kill_and_resume_gives_the_uninterrupted_weights(tmp_path):
    data = TinyNoisyLabelSet()
    straight = PretrainTrainer(_config(), data, tmp_path / "straight", progress=False)
    initial = {k: v.clone() for k, v in straight.model.state_dict().items()}
    straight.fit()
    assert not torch.equal(initial["decoder.blocks.0.conv1.0.weight"],
                           straight.model.state_dict()["decoder.blocks.0.conv1.0.weight"])

    interrupted = PretrainTrainer(_config(), data, tmp_path / "resumed", progress=False)
    interrupted.fit(stop_after=1)
    assert interrupted.epoch == 1
    resumed = PretrainTrainer(_config(), data, tmp_path / "resumed", progress=False)
    resumed.fit()
    assert resumed.epoch == 2

    a, b = straight.model.state_dict(), resumed.model.state_dict()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    for row_a, row_b in zip(straight.history, resumed.history):
        assert {k: v for k, v in row_a.items() if k != "seconds"} == {
            k: v for k, v in row_b.items() if k != "seconds"}

    with open(tmp_path / "resumed" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["0", "1"]
    assert {"tr_loss", "tr_conloss_2t", "v_loss", "v1_mIoU", "v2_OA", "lr"} <= set(rows[0])
    assert (tmp_path / "resumed" / "epoch=001.ckpt").is_file()


def test_checkpoint_is_readable_as_an_authors_checkpoint(tmp_path):
    from eolabels.cromss.checkpoint import encoder_state_from_checkpoint, read_lightning_state_dict

    trainer = PretrainTrainer(_config(variant="cromss_lateF", epochs=1), TinyNoisyLabelSet(), tmp_path,
                              progress=False)
    trainer.fit()
    state = read_lightning_state_dict(tmp_path / "last.ckpt")
    s2 = encoder_state_from_checkpoint(state, "lfs2")
    ours = trainer.model.model2.encoder.state_dict()
    assert s2.keys() == ours.keys() and all(torch.equal(s2[k], ours[k]) for k in ours)


def test_single_modal_baseline_trains(tmp_path):
    trainer = PretrainTrainer(_config(variant="s1", epochs=1, label_smoothing=None),
                              TinyNoisyLabelSet(), tmp_path, progress=False)
    history = trainer.fit()
    assert np.isfinite(history[0]["tr_loss"]) and "v1_mIoU" in history[0] and "v2_mIoU" not in history[0]


def test_validation_split_is_seeded_one_percent():
    train, val = split_train_val(list(range(1000)), 0.01, 42)
    assert len(val) == 10 and len(train) == 990
    assert list(val.indices) == list(split_train_val(list(range(1000)), 0.01, 42)[1].indices)


def test_bad_settings_and_batches_fail(tmp_path):
    with pytest.raises(ValueError, match="unknown pretraining variant"):
        variant_config("earlyF")
    with pytest.raises(ValueError, match="needs two modalities"):
        PretrainConfig(kind="single", sample_selection=True)
    with pytest.raises(ValueError, match="cannot fill one batch"):
        PretrainTrainer(_config(batch_size=64), TinyNoisyLabelSet(), tmp_path / "a", progress=False)
    nine_bands = TinyNoisyLabelSet(s2_bands=9)
    trainer = PretrainTrainer(_config(), nine_bands, tmp_path / "b", progress=False)
    with pytest.raises(ValueError, match="S2 input has 9 bands, the model expects 13"):
        trainer.fit()
    PretrainTrainer(_config(epochs=1), TinyNoisyLabelSet(), tmp_path / "c", progress=False).fit()
    with pytest.raises(ValueError, match="another configuration"):
        PretrainTrainer(_config(epochs=1, lr=0.1), TinyNoisyLabelSet(), tmp_path / "c", progress=False).fit()


def test_runs_under_a_process_group(tmp_path):
    # one-process gloo group: exercises the DDP wrapper, sharded sampler and the reductions
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        trainer = PretrainTrainer(_config(epochs=1), TinyNoisyLabelSet(), tmp_path / "ddp", progress=False)
        assert isinstance(trainer.network, DistributedDataParallel)
        history = trainer.fit()
    finally:
        dist.destroy_process_group()
    assert np.isfinite(history[0]["v_loss"]) and (tmp_path / "ddp" / "last.ckpt").is_file()


def test_optimiser_defaults_match_reference(cases, repo_root):
    import yaml

    factor, patience, threshold, is_min, lr, weight_decay = cases["sched/pretrain_rop"]
    c = PretrainConfig()
    assert (c.plateau_factor, c.plateau_patience, c.plateau_threshold) == (factor, patience, threshold)
    assert is_min == 1 and (c.lr, c.weight_decay) == (lr, weight_decay)
    # the defaults are CPU-sized; the paper's run is config/paper.yaml
    paper = yaml.safe_load((repo_root / "config" / "paper.yaml").read_text())["cromss"]
    assert c.split_seed == 42
    assert (paper["val_fraction"], paper["batch_size"], paper["val_batch_size"]) == (0.01, 128, 5)


class WithTruth(TinyNoisyLabelSet):
    """Adds a hidden truth map and counts the samples drawn."""

    drawn = 0

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        WithTruth.drawn += 1
        sample = super().__getitem__(i)
        return {**sample, "truth": sample["label"].roll(1, -1)}


def test_truth_metrics_selection_ratio_and_batch_limit(tmp_path):
    WithTruth.drawn = 0
    trainer = PretrainTrainer(_config(epochs=1, max_batches_per_epoch=1), WithTruth(), tmp_path, progress=False)
    row = trainer.fit()[0]
    # one training batch of 4 plus the single validation sample (13 samples, 1 % → 1)
    assert WithTruth.drawn == 4 + 1
    assert 0 <= row["v1_truth_OA"] <= 1 and 0 <= row["v2_truth_mIoU"] <= 1
    assert row["sel_ratio"] == pytest.approx(0.99663, abs=1e-5) and 0 < row["tr_selweight_1"] <= 1
