"""The one model builder (eolabels.models) and load_branch (eolabels.cromss.checkpoint)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import pytest
import segmentation_models_pytorch as smp
import torch

from eolabels.cromss.checkpoint import LIGHTNING_PREFIX, load_branch
from eolabels.cromss.models import LateFusionUnet, MidFusionUnet, build_pretrain_model
from eolabels.cromss.train import PretrainConfig
from eolabels.epitome.dfc import DistilledFCN
from eolabels.models import create_model, model_names
from eolabels.similarity.segmentation import SmallUNet

ENCODER = "tu-mobilenetv3_small_050"


def test_an_unknown_name_lists_every_valid_one():
    with pytest.raises(KeyError) as err:
        create_model("unet3000")
    message = str(err.value)
    assert "unet3000" in message
    for name in ("cromss_unet", "cromss_midf", "cromss_latef", "smallunet", "distilledfcn", "unet", "fpn",
                 "pspnet", "deeplabv3plus"):
        assert name in model_names() and name in message, name


def test_names_are_case_insensitive_and_build_the_registered_classes():
    assert isinstance(create_model("SmallUNet", in_channels=3, classes=2, width=4), SmallUNet)
    assert isinstance(create_model("DistilledFCN", in_channels=4, num_classes=3, width=8), DistilledFCN)
    assert isinstance(create_model("cromss_midF", encoder_name=ENCODER, in_channels_s1=2, in_channels_s2=9,
                                   classes=9), MidFusionUnet)
    assert isinstance(create_model("cromss_lateF", encoder_name=ENCODER, in_channels_s1=2, in_channels_s2=9,
                                   classes=9), LateFusionUnet)
    unet = create_model("cromss_unet", encoder_name=ENCODER, in_channels=2, classes=9)
    assert isinstance(unet, smp.Unet) and unet.encoder.model.conv_stem.in_channels == 2


def test_smp_architectures_fall_through_with_random_weights():
    torch.manual_seed(0)
    model = create_model("FPN", encoder_name="resnet18", in_channels=4, classes=3)
    assert isinstance(model, smp.FPN)
    assert model.eval()(torch.rand(1, 4, 64, 64)).shape == (1, 3, 64, 64)
    torch.manual_seed(0)  # the same seed builds the same random encoder: nothing was loaded
    same = smp.FPN(encoder_name="resnet18", encoder_weights=None, in_channels=4, classes=3)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), same.state_dict().values()))
    with pytest.raises(ValueError, match="download"):
        create_model("unet", encoder_name="resnet18", encoder_weights="imagenet")


def _checkpoint(path: Path, kind: str, modality: str = "s2") -> tuple[Path, torch.nn.Module]:
    """A checkpoint in the trainer's layout (``net.`` keys + its config), BN statistics moved off
    their initial values so that a branch using the wrong statistics would show."""
    torch.manual_seed(1)
    model = build_pretrain_model(kind, ENCODER, in_channels_s2=9, modality=modality)
    with torch.no_grad():
        x1, x2 = torch.rand(2, 2, 64, 64) * 3, torch.rand(2, 9, 64, 64) * 3
        model(x2 if modality == "s2" else x1) if kind == "single" else model(x1, x2)
    config = asdict(PretrainConfig(kind=kind, modality=modality, encoder_name=ENCODER, in_channels_s2=9,
                                   sample_selection=False))
    state = {LIGHTNING_PREFIX + k: v for k, v in model.state_dict().items()}
    torch.save({"epoch": 1, "state_dict": state, "config": config}, path)
    return path, model.eval()


@pytest.mark.parametrize("kind", ["mid_fusion", "late_fusion"])
def test_load_branch_gives_the_full_models_logits_of_that_modality(tmp_path, kind):
    path, model = _checkpoint(tmp_path / "c.ckpt", kind)
    torch.manual_seed(2)
    x1, x2 = torch.rand(2, 2, 64, 64), torch.rand(2, 9, 64, 64)
    with torch.no_grad():
        logits_s1, logits_s2 = model(x1, x2)
        assert torch.equal(load_branch(path, "s1").eval()(x1), logits_s1)
        assert torch.equal(load_branch(path, "s2").eval()(x2), logits_s2)


def test_load_branch_of_a_single_modal_run_is_the_u_net(tmp_path):
    path, model = _checkpoint(tmp_path / "c.ckpt", "single", modality="s1")
    x = torch.rand(2, 2, 64, 64)
    with torch.no_grad():
        assert torch.equal(load_branch(path, "s1").eval()(x), model(x))
    with pytest.raises(ValueError, match="modality must be one of"):
        load_branch(path, "s3")
    torch.save({"state_dict": {}}, tmp_path / "bare.ckpt")
    with pytest.raises(ValueError, match=r"bare\.ckpt records no model configuration"):
        load_branch(tmp_path / "bare.ckpt", "s2")
