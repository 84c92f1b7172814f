import pytest
import segmentation_models_pytorch as smp
import torch
from segmentation_models_pytorch.encoders import get_encoder

from eolabels.cromss.checkpoint import (
    encoder_state_from_checkpoint,
    export_encoders,
    load_encoder,
    load_pretrain_checkpoint,
    read_lightning_state_dict,
)
from eolabels.cromss.models import build_pretrain_model


def _fake_lightning_checkpoint(model, path):
    """What Lightning writes for the authors' ``Unet_mm``: the net under ``net.``, plus training state."""
    state = {f"net.{k}": v for k, v in model.state_dict().items()}
    torch.save({"epoch": 199, "global_step": 10, "state_dict": state}, path)
    return state


@pytest.fixture(scope="module")
def trained_mid():
    torch.manual_seed(3)
    model = build_pretrain_model("mid_fusion", "resnet18")
    with torch.no_grad():  # move away from the initial weights so a load is visible
        for p in model.parameters():
            p.add_(0.01)
    return model


def test_load_fake_authors_checkpoint(trained_mid, tmp_path):
    path = tmp_path / "weights-cromss-13B-midFusion-epoch=199.ckpt"
    _fake_lightning_checkpoint(trained_mid, path)
    fresh = build_pretrain_model("mid_fusion", "resnet18")
    load_pretrain_checkpoint(fresh, path)
    for (k, a), b in zip(trained_mid.state_dict().items(), fresh.state_dict().values()):
        assert torch.equal(a, b), k


def test_checkpoint_of_another_architecture_is_named(trained_mid, tmp_path):
    path = tmp_path / "mid.ckpt"
    _fake_lightning_checkpoint(trained_mid, path)
    with pytest.raises(ValueError, match=r"mid\.ckpt does not match LateFusionUnet.*missing.*model1"):
        load_pretrain_checkpoint(build_pretrain_model("late_fusion", "resnet18"), path)
    with pytest.raises(ValueError, match=r"shape mismatch.*encoder\.conv1\.weight"):
        load_pretrain_checkpoint(build_pretrain_model("mid_fusion", "resnet18", in_channels_s2=9), path)


def test_unreadable_checkpoint_is_named(tmp_path):
    bad = tmp_path / "broken.ckpt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="broken.ckpt"):
        read_lightning_state_dict(bad)
    with pytest.raises(FileNotFoundError, match="missing.ckpt"):
        read_lightning_state_dict(tmp_path / "missing.ckpt")


def test_exported_encoders_load_into_fresh_smp_encoders(trained_mid):
    exported = export_encoders(trained_mid)
    x = torch.rand(1, 2, 32, 32)
    s1 = load_encoder(get_encoder("resnet18", in_channels=2, weights=None), exported["s1"]).eval()
    trained_mid.eval()
    with torch.no_grad():
        for a, b in zip(s1(x), trained_mid.encoder1(x)):
            torch.testing.assert_close(a, b)
    # the fine-tuning stage puts the S2 encoder into an smp model's ``encoder``
    fpn = smp.FPN("resnet18", encoder_weights=None, in_channels=13, classes=13)
    load_encoder(fpn.encoder, exported["s2"])
    assert torch.equal(fpn.encoder.conv1.weight, trained_mid.encoder.conv1.weight)
    with pytest.raises(ValueError, match="shape mismatch"):
        load_encoder(get_encoder("resnet18", in_channels=13, weights=None), exported["s1"], "s1 export")


@pytest.mark.parametrize("kind,tags", [("mid_fusion", ("mfs1", "mfs2")), ("late_fusion", ("lfs1", "lfs2"))])
def test_encoder_tags_select_the_reference_prefixes(kind, tags, tmp_path):
    model = build_pretrain_model(kind, "resnet18")
    state = _fake_lightning_checkpoint(model, tmp_path / "w.ckpt")
    exported = export_encoders(model)
    for tag, modality in zip(tags, ("s1", "s2")):
        picked = encoder_state_from_checkpoint(state, tag)
        assert picked.keys() == exported[modality].keys()
        assert all(torch.equal(picked[k], exported[modality][k]) for k in picked)
    with pytest.raises(ValueError, match="unknown encoder tag"):
        encoder_state_from_checkpoint(state, "xfs1")


def test_authors_encoder_prefixes_cover_all_encoder_tensors(arch):
    state = {k: torch.empty(v) for k, v in arch["midF_s2b13"]["state_dict"].items()}
    encoder = get_encoder("resnet50", in_channels=2, weights=None)
    load_encoder(encoder, encoder_state_from_checkpoint(state, "mfs1"), "authors' layout")
    assert len(encoder.state_dict()) == arch["ft_FPN_mfs1"]["n_loaded"] == 318
    # DFC2020 fine-tuning: PSPNet uses encoder depth 3 but still holds (and loads) layer3/layer4
    pspnet = smp.PSPNet("resnet50", encoder_weights=None, in_channels=13, classes=8)
    assert sum(p.numel() for p in pspnet.parameters()) == arch["ft_PSPNet_mfs2"]["n_params"]
    load_encoder(pspnet.encoder, encoder_state_from_checkpoint(state, "mfs2"), "authors' layout")


def test_a_narrow_decoder_is_recorded_and_rebuilt(tmp_path):
    from eolabels.cromss.checkpoint import load_branch
    from eolabels.cromss.train import PretrainConfig
    from dataclasses import asdict

    config = PretrainConfig(kind="mid_fusion", encoder_name="tu-mobilenetv3_small_050", in_channels_s2=9,
                            decoder_channels=(32, 16, 16, 8, 8))
    model = build_pretrain_model("mid_fusion", "tu-mobilenetv3_small_050", in_channels_s2=9,
                                 decoder_channels=(32, 16, 16, 8, 8))
    torch.save({"state_dict": {f"net.{k}": v for k, v in model.state_dict().items()}, "config": asdict(config)},
               tmp_path / "narrow.ckpt")
    branch = load_branch(tmp_path / "narrow.ckpt", "s2")
    assert branch.decoder.blocks[-1].conv2[0].out_channels == 8
