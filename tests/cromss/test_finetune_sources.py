"""Encoder sources of the fine-tuning rows: every tensor lands, counted, and mistakes fail naming the row;
the paper's fine-tuning models have the authors' parameter counts."""

from __future__ import annotations

import pytest
import torch
import torchvision

from eolabels.cromss.checkpoint import export_encoders, save_encoders
from eolabels.cromss.models import build_pretrain_model
from eolabels.finetune.encoders import EncoderSource, EncoderSourceError, load_source
from eolabels.models import create_model

FRAMEWORKS = {"PSPNet": ("pspnet", 8), "DeepLabV3Plus": ("deeplabv3plus", 9), "FPN": ("fpn", 13)}
TAG_MODEL = {"mfs1": "midF", "mfs2": "midF", "lfs1": "lateF", "lfs2": "lateF"}


def _authors_checkpoint(arch, variant, path):
    """A Lightning checkpoint with the authors' exact keys and shapes (cromss_arch.json), random values."""
    shapes = arch[f"{variant}_s2b13"]["state_dict"]
    state = {k: torch.randn(v) if v else torch.tensor(1) for k, v in shapes.items()}
    torch.save({"state_dict": state, "epoch": 199}, path)


@pytest.mark.parametrize("framework", list(FRAMEWORKS))
@pytest.mark.parametrize("tag", ["mfs1", "mfs2", "lfs1", "lfs2"])
def test_every_encoder_tensor_of_the_authors_checkpoints_lands(arch, tmp_path, framework, tag):
    expected = arch[f"ft_{framework}_{tag}"]
    name, classes = FRAMEWORKS[framework]
    path = tmp_path / f"{TAG_MODEL[tag]}.ckpt"
    if not path.exists():
        _authors_checkpoint(arch, TAG_MODEL[tag], path)
    model = create_model(name, encoder_name="resnet50", in_channels=2 if tag.endswith("1") else 13, classes=classes)
    loaded = load_source(model.encoder, EncoderSource("authors", "lightning", str(path), tag), "s2")
    assert loaded == expected["n_loaded"] == 318
    assert sum(p.numel() for p in model.parameters()) == expected["n_params"]
    state = torch.load(path, weights_only=True)["state_dict"]
    prefix = {"mfs1": "net.encoder1.", "mfs2": "net.encoder.", "lfs1": "net.model1.encoder.",
              "lfs2": "net.model2.encoder."}[tag]
    assert torch.equal(model.encoder.state_dict()["layer4.2.conv3.weight"], state[prefix + "layer4.2.conv3.weight"])


def test_our_pretrained_branches_load_and_the_wrong_modality_is_named(tmp_path):
    model = build_pretrain_model("mid_fusion", "tu-mobilenetv3_small_050", in_channels_s2=9, classes=9)
    path = tmp_path / "encoders.pt"
    save_encoders(path, export_encoders(model), "tu-mobilenetv3_small_050", {"s1": 2, "s2": 9})
    for modality, bands in (("s1", 2), ("s2", 9)):
        target = create_model("fpn", encoder_name="tu-mobilenetv3_small_050", in_channels=bands, classes=13)
        n = load_source(target.encoder, EncoderSource("cromss_midF", "eolabels", str(path)), modality)
        assert n == len(target.encoder.state_dict()) == 240
    single = build_pretrain_model("single", "tu-mobilenetv3_small_050", in_channels_s2=9, classes=9, modality="s2")
    save_encoders(path, export_encoders(single, "s2"), "tu-mobilenetv3_small_050", {"s2": 9})
    target = create_model("fpn", encoder_name="tu-mobilenetv3_small_050", in_channels=2, classes=13)
    with pytest.raises(EncoderSourceError, match="'s2'.*has no s1 encoder"):
        load_source(target.encoder, EncoderSource("s2", "eolabels", str(path)), "s1")


def test_torchvision_resnet_weights_with_wrappers_and_head_load(tmp_path):
    resnet = torchvision.models.resnet18()
    wrapped = {f"module.encoder_q.{k}": v for k, v in resnet.state_dict().items()}
    torch.save({"state_dict": wrapped}, tmp_path / "moco.pth")
    model = create_model("unet", encoder_name="resnet18", in_channels=3, classes=9)
    n = load_source(model.encoder, EncoderSource("moco", "torchvision", str(tmp_path / "moco.pth")), "s2")
    assert n == len(model.encoder.state_dict()) == len(resnet.state_dict()) - 2  # fc.weight, fc.bias dropped
    assert torch.equal(model.encoder.state_dict()["conv1.weight"], resnet.state_dict()["conv1.weight"])


def test_band_count_architecture_and_missing_file_fail_naming_the_row(tmp_path):
    torch.save(torchvision.models.resnet18().state_dict(), tmp_path / "rgb.pth")
    nine = create_model("unet", encoder_name="resnet18", in_channels=9, classes=9)
    with pytest.raises(EncoderSourceError, match="'rgb'.*takes 3 input bands.*has 9"):
        load_source(nine.encoder, EncoderSource("rgb", "torchvision", str(tmp_path / "rgb.pth")), "s2")
    resnet50 = create_model("unet", encoder_name="resnet50", in_channels=3, classes=9)
    with pytest.raises(EncoderSourceError, match="'rgb'.*another architecture"):
        load_source(resnet50.encoder, EncoderSource("rgb", "torchvision", str(tmp_path / "rgb.pth")), "s2")
    with pytest.raises(EncoderSourceError, match="'dino'.*not found"):
        EncoderSource("dino", "torchvision", str(tmp_path / "absent.pth")).check_exists()
