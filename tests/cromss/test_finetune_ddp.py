"""A fine-tuning row as data-parallel torchrun processes (2 CPU processes, gloo), started the way
rule finetune_row starts it: the files are written once and every test tile is scored exactly once."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from snakemake.utils import validate

from eolabels.finetune.rows import finetune_config, finetune_row_job
from eolabels.finetune.trainer import build_model, predict
from eolabels.finetune.wiring import row_settings
from eolabels.workflow import logged
from finetune_data import write_dw

SCHEMA = Path(__file__).parents[2] / "config" / "schemas" / "finetune.yaml"


@pytest.mark.slow
@pytest.mark.timeout(300)  # a deadlock would otherwise wait for gloo's 30-min timeout
@pytest.mark.parametrize("n_test", [3, 1])  # 1: a process holds no test tile and must not wait for it
def test_a_row_on_two_processes_scores_every_test_tile_once(tmp_path, n_test):
    dw = write_dw(tmp_path / "dw", n_train=4, n_test=n_test, size=64)
    section = {"tasks": ["dw"], "frameworks": {"dw": "fpn"}, "crop_size": {"dw": 64}, "epochs": 1, "cosine_epochs": 1,
               "batch_size": 2, "test_batch_size": 1, "repeats": 1, "modes": ["finetuned"], "amp": False,
               "processes": 2, "model_kwargs": {"fpn": {"decoder_pyramid_channels": 16,
                                                        "decoder_segmentation_channels": 32}}}
    validate(section, str(SCHEMA), set_default=True)
    settings = row_settings(section, "dw")
    out = tmp_path / "row"
    record = {"name": "random", "kind": "random", "path": None, "tag": None, "encoder": "resnet18"}
    with logged(tmp_path / "rule.log"):  # a hang would end in the collectives' timeout, failing the row
        finetune_row_job(dataset_dir=dw, out_dir=out, summary_path=out / "summary.json",
                         weights={"finetuned": out / "finetuned.pt"}, task_name="dw", ft_input="s2_b9",
                         source_record=record, settings=settings, seed=0, device="cpu", threads=2)
    log = (tmp_path / "rule.log").read_text()
    assert "launching" in log and "--nproc_per_node=2" in log
    summary = json.loads((out / "summary.json").read_text())
    assert summary["processes"] == 2 and summary["test_tiles"] == n_test
    result = json.loads((out / "finetuned" / "rep0" / "result.json").read_text())
    # 3 tiles over 2 processes: a padding sampler would have scored one of them twice (4 x 64²)
    assert result["test_pixels"] == n_test * 64 * 64
    assert not list(out.rglob("*.ckpt")) and not list(out.rglob("tmp*.json"))  # no checkpoint, no settings file
    assert result["processes"] == 2

    # the scores are those of the saved weights, recomputed here on every test tile in one process
    config = finetune_config("dw", "s2_b9", "finetuned", 0, settings, "resnet18", 0)
    model = build_model(config)
    model.load_state_dict(torch.load(out / "finetuned.pt", weights_only=True))
    model.eval()
    from eolabels.finetune.data import FinetuneDataset
    from eolabels.finetune.tasks import task
    from eolabels.cromss.normalization import s2_band_indices

    test = FinetuneDataset(dw, task("dw"), "test", "s2", s2_band_indices(9))
    hits = sum(int((predict(model, test[i]["image"][None])[0] == test[i]["label"]).sum()) for i in range(len(test)))
    assert result["scores"]["OA"] == pytest.approx(hits / (n_test * 64 * 64))
    assert np.isfinite(list(result["scores"].values())).all()
