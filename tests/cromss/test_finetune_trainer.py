"""The fine-tuning trainer: golden loss, gradient and metrics through it, the cosine schedule by hand,
frozen encoders and their BN statistics, exact resume, and bad input naming what is wrong."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from eolabels.finetune.data import FinetuneDataError, FinetuneDataset
from eolabels.finetune.encoders import EncoderSource
from eolabels.finetune.rows import finetune_config, run_once
from eolabels.finetune.settings import FinetuneConfig
from eolabels.finetune.tasks import task
from eolabels.finetune.trainer import FinetuneTrainer
from finetune_data import write_dw

@pytest.fixture
def dw_dataset(tmp_path):
    return write_dw(tmp_path / "dw")


TASK_OF = {"dw": "dw", "osm": "osm", "dfc": "dfc2020"}


class FixedLogits(nn.Module):
    """Returns the golden logits of the samples whose index the image's first pixel holds."""

    def __init__(self, logits: np.ndarray) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.from_numpy(logits).float())
        self.encoder = nn.Identity()

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.logits[image[:, 0, 0, 0].long()]


class GoldenTrainer(FinetuneTrainer):
    def __init__(self, logits, *args, **kwargs):
        self.golden_logits = logits
        super().__init__(*args, **kwargs)

    def configure_model(self) -> nn.Module:
        return FixedLogits(self.golden_logits)


@pytest.mark.parametrize("name", ["dw", "osm", "dfc"])
def test_golden_loss_gradient_and_metrics_through_the_trainer(cases, golden, name):
    logits, y = cases[f"ft/{name}/logits"], torch.from_numpy(cases[f"ft/{name}/y"]).long()
    n, _, h, w = logits.shape
    images = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 2, h, w).contiguous()
    samples = [{"image": images[i], "label": y[i]} for i in range(n)]
    config = FinetuneConfig(task=TASK_OF[name], epochs=1, batch_size=n, test_batch_size=2, amp=False)
    trainer = GoldenTrainer(logits, config, samples, samples, device="cpu", progress=False)
    loss, parts = trainer.training_step({"image": images, "label": y}, 0)
    loss.backward()
    golden(f"ft/{name}/loss", torch.tensor([parts["tr_loss"], parts["tr_ce"], parts["tr_dice"]], dtype=torch.float64))
    golden(f"ft/{name}/grad", trainer.model.logits.grad)
    scores = trainer.evaluate()  # two batches (2 + 1 samples): one confusion matrix over the set
    for key, per_class in (("iou", "iou"), ("f1", "f1"), ("precise", "precision"), ("recall", "recall")):
        golden(f"ft/{name}/metric_{key}", np.append(scores[per_class], scores[per_class].mean()))
    golden(f"ft/{name}/metric_oa", [scores["OA"]])


def test_cosine_schedule_by_hand_and_against_the_reference(cases):
    config = FinetuneConfig(task="dw", epochs=50, amp=False, encoder_name="tu-mobilenetv3_small_050",
                            model_kwargs=(("decoder_channels", 16),))
    trainer = FinetuneTrainer(config, [], [], device="cpu", progress=False)
    lrs = []
    for _ in range(50):
        lrs.append(trainer.optimizer.param_groups[0]["lr"])
        trainer.optimizer.step()  # no gradients: only the schedule moves
        trainer.scheduler.step()
    by_hand = {0: 5e-4, 20: 1e-5 + 4.9e-4 * 0.5, 39: 1e-5 + 4.9e-4 * (1 - math.cos(math.pi / 40)) / 2,
               40: 1e-5, 49: 1e-5}
    for epoch, lr in by_hand.items():
        assert lrs[epoch] == pytest.approx(lr, rel=1e-9), epoch
    np.testing.assert_allclose(lrs, cases["ft/cos_lr"], rtol=1e-5)


def _config(**kw) -> FinetuneConfig:
    base = dict(task="dw", framework="fpn", encoder_name="resnet18", in_channels=9, epochs=2, batch_size=2,
                test_batch_size=2, crop_size=32, amp=False, seed=3,
                model_kwargs=(("decoder_pyramid_channels", 16), ("decoder_segmentation_channels", 32)))
    return FinetuneConfig(**{**base, **kw})


def _datasets(root, config):
    t = task("dw")
    train = FinetuneDataset(root, t, "train", "s2", (1, 2, 3, 4, 5, 6, 7, 11, 12), augment=True, crop_size=32)
    return train, FinetuneDataset(root, t, "test", "s2", (1, 2, 3, 4, 5, 6, 7, 11, 12))


@pytest.mark.parametrize("freeze_bn", [False, True])
def test_frozen_encoder_weights_stay_and_bn_statistics_follow_the_flag(dw_dataset, freeze_bn):
    config = _config(frozen=True, freeze_bn=freeze_bn, epochs=1)
    trainer = FinetuneTrainer(config, *_datasets(dw_dataset, config), device="cpu", progress=False)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.fit()
    after = trainer.model.state_dict()
    encoder_weights = [k for k in before if k.startswith("encoder.") and not k.split(".")[-1].startswith(
        ("running_", "num_batches"))]
    bn_stats = [k for k in before if k.startswith("encoder.") and k.endswith("running_mean")]
    assert len(encoder_weights) > 50 and all(torch.equal(before[k], after[k]) for k in encoder_weights)
    changed_bn = sum(not torch.equal(before[k], after[k]) for k in bn_stats)
    assert changed_bn == (0 if freeze_bn else len(bn_stats))
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("decoder."))


def test_a_killed_run_resumes_to_the_weights_of_an_uninterrupted_one(dw_dataset, tmp_path):
    config = _config()
    data = _datasets(dw_dataset, config)
    whole = FinetuneTrainer(config, *data, out_dir=tmp_path / "whole", device="cpu", progress=False)
    whole.fit()
    first = FinetuneTrainer(config, *data, out_dir=tmp_path / "cut", device="cpu", progress=False)
    first.fit(stop_after=1)
    resumed = FinetuneTrainer(config, *data, out_dir=tmp_path / "cut", device="cpu", progress=False)
    resumed.fit()
    for key, value in whole.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key
    assert whole.last_scores["OA"] == resumed.last_scores["OA"]


def test_run_once_reuses_a_finished_run_and_keeps_first_repeat_weights(dw_dataset, tmp_path):
    config = _config(epochs=1)
    data = _datasets(dw_dataset, config)
    result = run_once(dw_dataset, config, EncoderSource("random"), tmp_path / "rep0", data, "cpu", keep_weights=True)
    assert (tmp_path / "rep0" / "weights.pt").is_file() and not list((tmp_path / "rep0").glob("*.ckpt"))
    again = run_once(dw_dataset, config, EncoderSource("random"), tmp_path / "rep0", data, "cpu", keep_weights=True)
    assert again == result and 0 <= result["scores"]["OA"] <= 1


def test_finetune_config_from_a_section_resolves_the_task_rules():
    section = {"frameworks": {"dw": "deeplabv3plus", "dfc2020": "pspnet", "osm": "fpn"}, "model_kwargs": {},
               "crop_size": {"dw": "auto", "dfc2020": None, "osm": "auto"}, "freeze_bn": False,
               **{k: getattr(FinetuneConfig(), k) for k in (
                   "epochs", "batch_size", "test_batch_size", "lr", "final_lr", "cosine_epochs", "weight_decay",
                   "flip_p", "rotate_p", "drop_last_test", "eval_every", "amp", "num_workers",
                   "max_batches_per_epoch")}}
    dw = finetune_config("dw", "s2_b9", "frozen", 2, section, "resnet50", seed=10)
    assert (dw.framework, dw.crop_size, dw.in_channels, dw.frozen, dw.seed, dw.classes) == (
        "deeplabv3plus", 496, 9, True, 12, 9)
    osm = finetune_config("osm", "s1", "finetuned", 0, section, "resnet50", seed=0)
    assert (osm.crop_size, osm.in_channels, osm.frozen, osm.classes, osm.ignore_index) == (480, 2, False, 13, 255)
    dfc = finetune_config("dfc2020", "s2_b13", "finetuned", 0, section, "resnet50", seed=0)
    assert (dfc.crop_size, dfc.classes, dfc.ignore_index) == (None, 8, None)


# ---------------------------------------------------------------- bad input


def test_a_label_outside_the_task_classes_names_the_sample(dw_dataset):
    import rasterio

    path = dw_dataset / "samples" / "dw001" / "dw.tif"
    with rasterio.open(path, "r+") as ds:  # damaged after writing: the writer refuses such labels
        data = ds.read()
        data[0, 0, 0] = 9  # DW has 0..8
        ds.write(data)
    dataset = FinetuneDataset(dw_dataset, task("dw"), "train", "s2", None)
    with pytest.raises(FinetuneDataError, match=r"dw001.*label id 9"):
        dataset.decode(1)


def test_a_test_split_without_labelled_pixels_is_an_error(tmp_path):
    root = write_dw(tmp_path / "empty", label_fn=lambda i, labels: np.full_like(labels, 255) if i >= 4 else labels)
    config = _config(epochs=1)
    trainer = FinetuneTrainer(config, *_datasets(root, config), device="cpu", progress=False)
    with pytest.raises(ValueError, match="no labelled pixel"):
        trainer.evaluate()


def test_nan_imagery_fails_naming_the_file(dw_dataset):
    import rasterio

    path = next((dw_dataset / "samples" / "dw004").glob("s1.tif"))
    with rasterio.open(path, "r+") as ds:
        data = ds.read()
        data[0, 3, 3] = np.nan
        ds.write(data)
    dataset = FinetuneDataset(dw_dataset, task("dw"), "test", "s1")
    with pytest.raises(FinetuneDataError, match="dw004"):
        dataset.decode(0)


def test_dfc2020_refuses_unlabelled_pixels_it_has_no_ignore_index_for(tmp_path):
    from eolabels.data.kinds import DFC2020
    from eolabels.data.geotiff import GridSpec
    from eolabels.data.writer import DatasetWriter

    writer = DatasetWriter(tmp_path / "dfc", DFC2020.meta(source="synthetic", description="dfc test", layers=["s2", "dfc", "modis"]))
    labels = np.zeros((16, 16), np.uint8)
    labels[0, 0] = 255
    grid = GridSpec("EPSG:32633", (10.0, 0.0, 0.0, 0.0, -10.0, 0.0), 16, 16)
    writer.add("p0", "test", None, grid, {"s2": np.ones((13, 16, 16), np.uint16), "dfc": labels,
                                           "modis": np.ones((1, 16, 16), np.uint8)})
    writer.close()
    with pytest.raises(FinetuneDataError, match="no ignore index"):
        FinetuneDataset(tmp_path / "dfc", task("dfc2020"), "test", "s2", None).decode(0)


def test_scoring_does_not_draw_from_the_training_random_stream(dw_dataset):
    config = _config(epochs=1)
    trainer = FinetuneTrainer(config, *_datasets(dw_dataset, config), device="cpu", progress=False)
    state = torch.get_rng_state()
    trainer.evaluate()
    assert torch.equal(state, torch.get_rng_state())
