"""The small U-Net of the similarity stages, its checkpoint, and the cropped-tail Jacobians."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from eolabels.similarity.jacobian import (
    JacobianConfig,
    _crop_tail_input,
    per_sample_jacobians,
    select_parameters,
    tail_modules,
    tail_radius,
)
from eolabels.similarity.segmentation import (
    BandNormaliser,
    SmallUNet,
    TrainSettings,
    evaluate_segmenter,
    load_segmenter,
    predict_probabilities,
    train_segmenter,
)
from schema_defaults import assert_defaults_match


def two_class_tiles(n: int = 4, size: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Band 0 is high on class 1, low on class 0; the other band is noise."""
    rng = np.random.default_rng(seed)
    labels = (rng.random((n, size // 4, size // 4)) < 0.5).repeat(4, 1).repeat(4, 2).astype(np.uint8)
    images = np.stack([1000 + 800 * labels.astype(np.int64), rng.integers(0, 2000, labels.shape)], axis=1).astype(np.uint16)
    return images, labels


def test_small_unet_shapes_and_subsets():
    model = SmallUNet(13, 9, width=4, depth=2)
    assert model(torch.randn(2, 13, 32, 32)).shape == (2, 9, 32, 32)
    names = select_parameters(model, "last_block+head")
    assert names and all(n.startswith(("decoder.1.", "head.")) for n in names)
    assert tail_radius(tail_modules(model, "last_block+head")) == 2  # two 3x3 convs, a 1x1 head


def test_normaliser_statistics_and_band_check():
    images = np.stack([np.full((1, 4, 4), 10.0), np.arange(16.0).reshape(1, 4, 4)], axis=1)
    normaliser = BandNormaliser.fit(images)
    assert normaliser.mean == pytest.approx((10.0, 7.5))
    assert normaliser.std[0] == pytest.approx(1e-6)  # a constant band is not divided by zero
    x = normaliser(images)
    assert x.dtype == torch.float32 and float(x[:, 1].mean()) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="2 bands"):
        normaliser(np.zeros((1, 3, 4, 4)))


def test_training_learns_a_separable_task_and_checkpoint_round_trips(tmp_path):
    images, labels = two_class_tiles()
    noisy = labels.copy()
    noisy[:, 0, 0] = 255  # unlabelled pixels are ignored
    settings = TrainSettings(width=4, depth=2, steps=60, batch_size=4, crop_size=16, learning_rate=1e-2)
    segmenter = train_segmenter(images, noisy, 2, settings, seed=0, progress=False)
    assert evaluate_segmenter(segmenter, images, labels)["OA"] >= 0.95
    path = tmp_path / "model.pt"
    segmenter.save(path)
    loaded = load_segmenter(path)
    torch.testing.assert_close(predict_probabilities(loaded, images), predict_probabilities(segmenter, images))
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="bad.pt"):
        load_segmenter(tmp_path / "bad.pt")


def test_cropped_tail_jacobians_equal_the_uncropped_ones():
    torch.manual_seed(0)
    model = SmallUNet(3, 4, width=4, depth=2).double().eval()
    x = torch.randn(5, 3, 32, 32, dtype=torch.float64)
    cropped = per_sample_jacobians(model, x, JacobianConfig(), progress=False)
    whole = per_sample_jacobians(model, x, JacobianConfig(crop_tail=False), progress=False)
    torch.testing.assert_close(cropped, whole, rtol=1e-10, atol=1e-12)


def test_crop_window_by_hand_with_upsampling():
    # input 8x8 upsampled x2 inside the tail: output pixel (16 - 1, 5) reads input row 7, col 2
    tail_input = torch.zeros(1, 3, 8, 8)
    out = torch.zeros(1, 4, 16, 16)
    args, _, pixel = _crop_tail_input((tail_input,), {}, out, (15, 5), radius=2)
    # half-width ceil(2 / 2) + 1 = 2 input pixels: rows 5..7, cols 0..4
    assert args[0].shape[2:] == (3, 5)
    assert pixel == (15 - 2 * 5, 5)
    assert _crop_tail_input((tail_input,), {}, out, (8, 8), radius=16) is None  # whole input


def test_non_local_tail_is_not_cropped():
    assert tail_radius([("block", nn.Sequential(nn.Conv2d(2, 2, 3, padding=1), nn.AdaptiveAvgPool2d(1)))]) is None
    assert tail_radius([("block", nn.Conv2d(2, 2, 3, stride=2))]) is None


def test_cropped_tail_of_an_smp_unet_equals_the_uncropped_one():
    # smp's last decoder block upsamples its input to an explicit (height, width) target
    smp = pytest.importorskip("segmentation_models_pytorch")
    torch.manual_seed(0)
    model = smp.Unet("resnet18", encoder_weights=None, in_channels=4, classes=3).double().eval()
    x = torch.randn(2, 4, 32, 32, dtype=torch.float64)
    cropped = per_sample_jacobians(model, x, JacobianConfig(), progress=False)
    whole = per_sample_jacobians(model, x, JacobianConfig(crop_tail=False), progress=False)
    torch.testing.assert_close(cropped, whole, rtol=1e-9, atol=1e-11)


def test_explicit_upsampling_target_follows_the_crop():
    tail_input = torch.zeros(1, 3, 8, 8)
    out = torch.zeros(1, 4, 16, 16)
    args, kwargs, pixel = _crop_tail_input((tail_input, 16, 16), {"skip": None}, out, (8, 8), radius=2)
    assert args[0].shape[2:] == (5, 5) and args[1:] == (10, 10) and kwargs == {"skip": None}
    assert pixel == (8 - 2 * 2, 8 - 2 * 2)


def test_train_settings_defaults_are_the_schema_defaults():
    assert_defaults_match(TrainSettings, "schemas/similarity.yaml", "train")
