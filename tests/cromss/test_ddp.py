"""Data-parallel pretraining under torchrun: 2 CPU processes (gloo) end with identical weights."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from snakemake.utils import validate

from eolabels.cromss.wiring import training_settings
from eolabels.data.synthetic import generate_dataset

WORKER = Path(__file__).with_name("ddp_worker.py")
SETTINGS = {
    "encoder": "tu-mobilenetv3_small_050", "epochs": 2, "batch_size": 2, "val_batch_size": 1,
    "val_fraction": 0.34, "crop_size": 32, "lr": 1e-3, "weight_decay": 1e-8,
    "selection": {"rampdown_epochs": 1},
}
# the rule's params: the section validated with the schema's defaults, job keys left out
validate(SETTINGS, str(Path(__file__).parents[2] / "config" / "schemas" / "cromss.yaml"), set_default=True)
SETTINGS = training_settings(SETTINGS)


@pytest.mark.slow
def test_two_cpu_processes_end_with_identical_weights(tmp_path):
    generate_dataset("noldo", tmp_path / "noldo", {"incomplete_fraction": 0.0, "n_locations": 6, "tile_size": 48, "feature_size": 8.0}, seed=2)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(WORKER), str(tmp_path / "noldo"), str(tmp_path / "out"), json.dumps(SETTINGS)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    ranks = [torch.load(tmp_path / "out" / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert ranks[0]["world"] == ranks[1]["world"] == 2
    a, b = ranks[0]["state"], ranks[1]["state"]
    for key in a:
        # parameters via all-reduced gradients; BN buffers via DDP's broadcast from rank 0 each forward
        assert torch.equal(a[key], b[key]), key
    first, second = ranks[0]["history"], ranks[1]["history"]
    assert len(first) == len(second) == 2
    # each rank trained on its own shard, but validation is reduced over both
    assert first[0]["tr_loss"] != second[0]["tr_loss"]
    assert first[-1]["v_loss"] == second[-1]["v_loss"] and first[-1]["v2_OA"] == second[-1]["v2_OA"]
    assert (tmp_path / "out" / "encoders.pt").is_file() and (tmp_path / "out" / "last.ckpt").is_file()


@pytest.mark.slow
def test_workflow_entry_launches_torchrun_when_asked_for_processes(tmp_path):
    from eolabels.cromss.stages import PretrainOutputs, pretrain_encoder
    from eolabels.workflow import logged

    generate_dataset("noldo", tmp_path / "noldo", {"incomplete_fraction": 0.0, "n_locations": 6, "tile_size": 48, "feature_size": 8.0}, seed=2)
    log = tmp_path / "rule.log"
    with logged(log):  # as the rule's script runs it
        out = tmp_path / "out"
        outputs = PretrainOutputs(encoders=out / "encoders.pt", checkpoint=out / "epoch=000.ckpt",
                                  metrics=out / "metrics.csv", summary=out / "summary.json")
        pretrain_encoder(dataset_dir=tmp_path / "noldo", outputs=outputs, variant="lateF", bands="b13",
                        settings={**SETTINGS, "epochs": 1, "processes": 2}, seed=1, device="cpu", threads=2)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["processes"] == 2 and summary["effective_batch"] == 2 * SETTINGS["batch_size"]
    text = log.read_text()
    assert "launching" in text and "torch.distributed.run" in text
    assert "v2_truth_OA" in text.split("launching", 1)[1]  # the child processes' epoch lines reach the log
