"""Faults around training: damaged, foreign and unwritable checkpoints, a missing class table, a CUDA
device the machine lacks. Each error names the file or the config key; nothing half-written remains."""

from __future__ import annotations

import errno
import gc
import logging
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from reliability_helpers import leftovers

from eolabels.cromss.checkpoint import load_pretrain_checkpoint
from eolabels.cromss.models import build_pretrain_model
from eolabels.cromss.pretraining import pretrain_variant
from eolabels.cromss.stages import PretrainOutputs, pretrain_encoder
from eolabels.data.synthetic import generate_dataset
from eolabels.tables import load_schema
from eolabels.training import LAST_CHECKPOINT, load_checkpoint, save_checkpoint

from snakemake.utils import validate

from eolabels.cromss.wiring import training_settings

REPO = Path(__file__).resolve().parents[2]
SETTINGS = {"encoder": "tu-mobilenetv3_small_050", "epochs": 3, "max_batches_per_epoch": 1, "batch_size": 2,
            "val_batch_size": 1, "val_fraction": 0.34, "crop_size": 32, "selection": {"rampdown_epochs": 1}}
validate(SETTINGS, str(REPO / "config" / "schemas" / "cromss.yaml"), set_default=True)
SETTINGS = training_settings(SETTINGS)


@pytest.fixture(scope="module")
def noldo(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("noldo") / "noldo"
    generate_dataset("noldo", root, {"incomplete_fraction": 0.0, "n_locations": 3, "tile_size": 48, "feature_size": 8.0}, seed=2)
    return root


def _pretrain(noldo, out, **kwargs):
    torch.set_num_threads(1)
    return pretrain_variant(dataset_dir=noldo, out_dir=out, variant="midF", bands="b9", settings=SETTINGS,
                            seed=1, device="cpu", progress=False, **kwargs)


def _history(trainer):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in trainer.history]


@pytest.fixture(scope="module")
def finished(noldo, tmp_path_factory):
    """An uninterrupted run: its folder and its per-epoch history."""
    out = tmp_path_factory.mktemp("finished") / "run"
    return out, _history(_pretrain(noldo, out))


def test_truncated_checkpoint_is_named_and_training_starts_over(noldo, finished, tmp_path, caplog):
    out = tmp_path / "run"
    out.mkdir()
    last = out / LAST_CHECKPOINT
    last.write_bytes((finished[0] / LAST_CHECKPOINT).read_bytes()[:2000])  # cut short by a full disk
    with caplog.at_level(logging.WARNING):
        restarted = _pretrain(noldo, out)
    assert any(f"cannot read checkpoint {last}" in r.getMessage() for r in caplog.records)
    assert _history(restarted) == finished[1]
    assert load_checkpoint(last)["epoch"] == 3  # replaced by a whole one
    assert not [p for p in leftovers(out) if p.endswith(".tmp")]


def test_checkpoint_of_another_architecture_is_named(finished):
    ckpt = finished[0] / LAST_CHECKPOINT
    late = build_pretrain_model("late_fusion", SETTINGS["encoder"], in_channels_s2=9)
    before = {k: v.clone() for k, v in late.state_dict().items()}
    with pytest.raises(ValueError, match=rf"{ckpt} does not match LateFusionUnet"):
        load_pretrain_checkpoint(late, ckpt)
    assert all(torch.equal(v, before[k]) for k, v in late.state_dict().items())  # nothing half-loaded


@pytest.fixture()
def small_tmpfs(tmp_path):
    """A 256 KiB tmpfs: a real full disk (needs root; skipped where mounting is not allowed)."""
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {proc.stderr.strip()}")
    yield mount
    gc.collect()  # the failed write's file handle, held by the traceback, keeps the mount busy
    if subprocess.run(["umount", str(mount)]).returncode != 0:
        subprocess.run(["umount", "--lazy", str(mount)], check=True)


def test_full_disk_during_a_checkpoint_write(small_tmpfs):
    path = small_tmpfs / "run" / LAST_CHECKPOINT
    save_checkpoint(path, {"epoch": 1, "w": torch.ones(8)})
    with pytest.raises(OSError, match=rf"cannot write checkpoint {path}") as info:
        save_checkpoint(path, {"epoch": 2, "w": torch.zeros(200_000)})  # 800 kB into 256 KiB
    assert info.value.errno in (errno.ENOSPC, None)
    assert torch.equal(load_checkpoint(path)["w"], torch.ones(8))  # the previous checkpoint, whole
    assert leftovers(small_tmpfs / "run") == [LAST_CHECKPOINT]


def test_enospc_raised_by_the_write(tmp_path, monkeypatch):
    path = tmp_path / LAST_CHECKPOINT
    save_checkpoint(path, {"epoch": 1})

    def disk_full(obj, f):
        Path(f).write_bytes(b"PK\x03\x04 partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(OSError, match=rf"cannot write checkpoint {path}: .*No space left") as info:
        save_checkpoint(path, {"epoch": 2})
    assert info.value.errno == errno.ENOSPC
    monkeypatch.undo()
    assert load_checkpoint(path)["epoch"] == 1 and leftovers(tmp_path) == [LAST_CHECKPOINT]


def test_missing_class_table(tmp_path):
    tables = tmp_path / "tables"
    shutil.copytree(REPO / "config" / "tables", tables)
    (tables / "dw.csv").unlink()
    with pytest.raises(FileNotFoundError, match=rf"table 'dw': file {tables / 'dw.csv'} not found"):
        load_schema("dw", tables)


def test_cuda_device_on_a_machine_without_cuda(noldo, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "run"
    outputs = PretrainOutputs(encoders=out / "encoders.pt", checkpoint=out / "epoch=003.ckpt",
                              metrics=out / "metrics.csv", summary=out / "summary.json")
    with pytest.raises(RuntimeError, match=r"device 'cuda' \(config key `device`\): this machine has no CUDA device"):
        pretrain_encoder(dataset_dir=noldo, outputs=outputs, variant="midF", bands="b9", settings=SETTINGS,
                         seed=1, device="cuda")
    assert leftovers(out) == []
