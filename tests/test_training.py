"""The shared training layer (eolabels.training): exact resume, RNG capture, atomic checkpoints,
the metrics CSV and the hook order of the Trainer skeleton, on a tiny regression problem."""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from eolabels.training import (
    LAST_CHECKPOINT,
    METRICS_CSV,
    Trainer,
    epoch_checkpoint_name,
    load_checkpoint,
    restore_rng_state,
    rng_state,
    save_checkpoint,
    write_metrics_csv,
)


@dataclass(frozen=True)
class Recipe:
    lr: float = 0.05
    batches: int = 3
    epochs: int = 4


class Regression(Trainer):
    """y = x·w + noise; every batch draws from torch's, numpy's and Python's global generators, so
    an exact resume has to restore all three."""

    def __init__(self, recipe: Recipe, out_dir: Path | None, scheduler_interval: str = "epoch",
                 checkpoint_every: int = 2, checkpoint_interval_s: float = 0.0) -> None:
        torch.manual_seed(0)
        np.random.seed(0)
        random.seed(0)
        self.scheduler_interval = scheduler_interval  # type: ignore[misc]
        self.skip = set[int]()  # batch numbers (within an epoch) training_step declines
        super().__init__(recipe, epochs=recipe.epochs, out_dir=out_dir, checkpoint_every=checkpoint_every,
                         device="cpu", progress=False, checkpoint_interval_s=checkpoint_interval_s)

    def configure_model(self) -> nn.Module:
        return nn.Linear(3, 1)

    def configure_optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.model.parameters(), lr=self.config.lr)

    def configure_scheduler(self) -> torch.optim.lr_scheduler.LRScheduler:
        return torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda k: 0.5**k)

    def train_batches(self, epoch: int):
        def batches():
            for i in range(self.config.batches):
                x = torch.randn(8, 3) + float(np.random.rand()) + random.random()
                yield i, x, x @ torch.tensor([[1.0], [-2.0], [0.5]])
        return batches(), self.config.batches

    def training_step(self, batch, epoch: int):
        i, x, y = batch
        if i in self.skip:
            return None
        loss = nn.functional.mse_loss(self.network(x), y)
        return loss, {"mse": loss.item()}

    def validate(self, epoch: int) -> dict[str, float]:
        return {"w0": self.model.weight[0, 0].item()}


def _without_seconds(history):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


def test_resume_after_a_kill_reproduces_the_uninterrupted_weights(tmp_path):
    straight = Regression(Recipe(), tmp_path / "straight")
    straight.fit()
    killed = Regression(Recipe(), tmp_path / "resumed")
    killed.fit(stop_after=2)
    random.random(), np.random.rand(), torch.rand(1)  # a fresh process would not share these states
    resumed = Regression(Recipe(), tmp_path / "resumed")
    resumed.fit()
    assert resumed.epoch == straight.epoch == 4
    for name, value in straight.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[name]), name
    assert _without_seconds(resumed.history) == _without_seconds(straight.history)
    # the schedule resumed too: 0.05 halved once per finished epoch
    assert [row["lr"] for row in resumed.history] == [0.05, 0.025, 0.0125, 0.00625]
    # kept checkpoints every 2nd epoch (and the last), last.ckpt always
    names = {p.name for p in (tmp_path / "resumed").iterdir()}
    assert names == {LAST_CHECKPOINT, epoch_checkpoint_name(1), epoch_checkpoint_name(3), METRICS_CSV}


def test_a_checkpoint_interval_writes_on_kept_and_last_epochs_only(tmp_path):
    trainer = Regression(Recipe(epochs=7), tmp_path, checkpoint_every=4, checkpoint_interval_s=1e9)
    written = []
    save = trainer.save_checkpoint
    trainer.save_checkpoint = lambda path: (written.append((trainer.epoch, path.name)), save(path))[1]
    trainer.fit(stop_after=2)  # an interrupted call ends on a written epoch
    trainer.fit()
    assert written == [(2, LAST_CHECKPOINT), (4, LAST_CHECKPOINT), (4, epoch_checkpoint_name(3)),
                       (7, LAST_CHECKPOINT), (7, epoch_checkpoint_name(6))]
    resumed = Regression(Recipe(epochs=7), tmp_path)
    resumed.fit()
    assert resumed.epoch == 7 and len(resumed.history) == 7  # everything came from last.ckpt
    assert len(_rows_of(tmp_path / METRICS_CSV)) == 7


def test_a_run_killed_between_checkpoint_writes_resumes_to_the_uninterrupted_result(tmp_path):
    class Killed(Regression):
        def training_step(self, batch, epoch):
            if epoch == 3:
                raise KeyboardInterrupt  # the process dies in epoch 3: last.ckpt still holds epoch 1
            return super().training_step(batch, epoch)

    straight = Regression(Recipe(epochs=5), tmp_path / "straight", checkpoint_every=100, checkpoint_interval_s=1e9)
    straight.fit()
    killed = Killed(Recipe(epochs=5), tmp_path / "killed", checkpoint_every=100, checkpoint_interval_s=1e9)
    killed.fit(stop_after=1)
    with pytest.raises(KeyboardInterrupt):
        killed.fit()
    assert len(_rows_of(tmp_path / "killed" / METRICS_CSV)) == 1  # the file matches the checkpoint
    resumed = Regression(Recipe(epochs=5), tmp_path / "killed", checkpoint_every=100, checkpoint_interval_s=1e9)
    resumed.fit()
    for name, value in straight.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[name]), name
    assert _without_seconds(resumed.history) == _without_seconds(straight.history)


def _rows_of(path: Path) -> list[dict[str, str]]:
    import csv

    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_a_changed_configuration_does_not_resume(tmp_path):
    Regression(Recipe(epochs=1), tmp_path).fit()
    other = Regression(Recipe(lr=0.1), tmp_path)
    assert not other.can_resume_from(tmp_path / LAST_CHECKPOINT)
    with pytest.raises(ValueError, match="another configuration"):
        other.fit()
    same = Regression(Recipe(epochs=1), tmp_path)
    assert not same.can_resume_from(tmp_path / LAST_CHECKPOINT)  # finished
    assert Regression(Recipe(epochs=2), tmp_path).can_resume_from(tmp_path / LAST_CHECKPOINT) is False  # other epochs


def test_per_step_schedule_and_skipped_batches(tmp_path):
    trainer = Regression(Recipe(epochs=1), None, scheduler_interval="step")
    trainer.skip = {1}
    before = trainer.model.weight.detach().clone()
    history = trainer.fit()
    # two optimiser steps (batch 1 declined), each followed by a schedule step: lr 0.05 * 0.5^2
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(0.0125)
    assert trainer.optimizer.state[trainer.model.weight]["step"] == 2
    assert not torch.equal(before, trainer.model.weight)
    assert set(history[0]) == {"epoch", "lr", "mse", "w0", "seconds"}
    assert not list(Path(tmp_path).iterdir())  # no out_dir: nothing written


def test_rng_state_round_trip():
    torch.manual_seed(3), np.random.seed(3), random.seed(3)
    state = rng_state()
    first = (torch.rand(4), np.random.rand(4), [random.random() for _ in range(4)])
    restore_rng_state(state)
    second = (torch.rand(4), np.random.rand(4), [random.random() for _ in range(4)])
    assert torch.equal(first[0], second[0]) and np.array_equal(first[1], second[1]) and first[2] == second[2]


def test_rng_state_survives_a_weights_only_checkpoint(tmp_path):
    np.random.seed(7)
    save_checkpoint(tmp_path / "c.ckpt", {"rng": rng_state()})
    expected = np.random.rand(3)
    np.random.seed(8)
    restore_rng_state(load_checkpoint(tmp_path / "c.ckpt")["rng"])
    assert np.array_equal(np.random.rand(3), expected)


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    save_checkpoint(path, {"epoch": 1, "w": torch.ones(2)})

    def half_written(obj, f):
        Path(f).write_bytes(b"trunc")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", half_written)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"epoch": 2, "w": torch.zeros(2)})
    payload = load_checkpoint(path)  # the previous checkpoint, whole
    assert payload["epoch"] == 1 and torch.equal(payload["w"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # no temporary left behind


def test_metrics_csv_has_every_column_in_order_of_first_appearance(tmp_path):
    rows = [{"epoch": 0, "loss": 0.5}, {"epoch": 1, "loss": 0.25, "v_loss": 0.75}]
    write_metrics_csv(tmp_path / "metrics.csv", rows)
    assert (tmp_path / "metrics.csv").read_bytes() == b"epoch,loss,v_loss\r\n0,0.5,\r\n1,0.25,0.75\r\n"
    with open(tmp_path / "metrics.csv", newline="") as f:
        assert list(csv.DictReader(f))[1] == {"epoch": "1", "loss": "0.25", "v_loss": "0.75"}


def test_metrics_csv_of_a_run_matches_its_history(tmp_path):
    trainer = Regression(Recipe(epochs=2), tmp_path)
    trainer.fit()
    with open(tmp_path / METRICS_CSV, newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["epoch", "lr", "mse", "w0", "seconds"]
    assert [float(r["mse"]) for r in rows] == [row["mse"] for row in trainer.history]


def test_a_truncated_last_checkpoint_is_named_and_training_starts_over(tmp_path, caplog):
    uninterrupted = Regression(Recipe(), None)
    uninterrupted.fit()
    last = tmp_path / LAST_CHECKPOINT
    Regression(Recipe(), tmp_path).fit(stop_after=2)
    last.write_bytes(last.read_bytes()[:1000])  # a full disk during the write of a non-atomic copy
    with pytest.raises(ValueError, match=rf"cannot read checkpoint {last}"):
        load_checkpoint(last)
    restarted = Regression(Recipe(), tmp_path)
    with caplog.at_level("WARNING", logger="eolabels.training"):
        assert not restarted.can_resume_from(last)
        restarted.fit()
    assert sum(f"cannot read checkpoint {last}" in r.getMessage() for r in caplog.records) == 2
    assert any("training from the start" in r.getMessage() for r in caplog.records)
    assert _without_seconds(restarted.history) == _without_seconds(uninterrupted.history)
    assert load_checkpoint(last)["epoch"] == Recipe().epochs  # the damaged file was replaced
