import pytest
import torch
from segmentation_models_pytorch.decoders.unet.decoder import UnetDecoder

from eolabels.cromss.models import (
    LateFusionUnet,
    MidFusionUnet,
    _decode,
    build_pretrain_model,
    count_parameters,
    encoders_of,
)


def _pair(batch=2, size=32, s2_bands=13, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 2, size, size, generator=g), torch.rand(batch, s2_bands, size, size, generator=g)


@pytest.mark.parametrize("kind,key", [("mid_fusion", "midF_s2b13"), ("late_fusion", "lateF_s2b13")])
def test_resnet50_matches_authors_checkpoint_layout(arch, kind, key):
    model = build_pretrain_model(kind, "resnet50", in_channels_s2=13)
    reference = arch[key]
    assert count_parameters(model) == reference["n_params"]  # 56,058,521 / 65,072,754
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    theirs = {k.removeprefix("net."): v for k, v in reference["state_dict"].items()}
    assert ours == theirs


def test_nine_band_parameter_counts(arch):
    # the 13 → 9 band difference is the first conv only: 4 bands × 64 × 7 × 7 per S2 encoder
    assert arch["midF_s2b13"]["n_params"] - arch["midF_s2b9"]["n_params"] == 4 * 64 * 49
    model = build_pretrain_model("mid_fusion", "resnet18", in_channels_s2=9)
    assert model.encoder.conv1.weight.shape == (64, 9, 7, 7)
    assert model.encoder1.conv1.weight.shape == (64, 2, 7, 7)


def test_mid_fusion_decoder_is_shared_and_learns_from_both_branches():
    model = build_pretrain_model("mid_fusion", "resnet18", classes=5)
    assert sum(isinstance(m, UnetDecoder) for m in model.modules()) == 1
    x1, x2 = _pair()
    out1, out2 = model(x1, x2)
    assert out1.shape == out2.shape == (2, 5, 32, 32)
    weight = model.decoder.blocks[0].conv1[0].weight
    g1 = torch.autograd.grad(out1.square().mean(), weight, retain_graph=True)[0]
    g2 = torch.autograd.grad(out2.square().mean(), weight, retain_graph=True)[0]
    g12 = torch.autograd.grad(out1.square().mean() + out2.square().mean(), weight)[0]
    assert g1.abs().sum() > 0 and g2.abs().sum() > 0
    torch.testing.assert_close(g12, g1 + g2)


def test_mid_fusion_decoder_runs_twice_per_step():
    model = build_pretrain_model("mid_fusion", "resnet18")
    model.train()
    model(*_pair())
    bn = model.decoder.blocks[0].conv1[1]
    assert int(bn.num_batches_tracked) == 2  # S1 batch, then S2 batch
    assert int(model.encoder.bn1.num_batches_tracked) == 1


def test_mid_fusion_is_s1_then_s2_through_one_decoder():
    model = build_pretrain_model("mid_fusion", "resnet18").eval()
    x1, x2 = _pair()
    with torch.no_grad():
        out1, out2 = model(x1, x2)
        manual2 = model.segmentation_head(_decode(model.decoder, model.encoder(x2)))
        manual1 = model.segmentation_head(_decode(model.decoder, model.encoder1(x1)))
    torch.testing.assert_close(out1, manual1)
    torch.testing.assert_close(out2, manual2)


def test_late_fusion_branches_are_independent():
    model = build_pretrain_model("late_fusion", "resnet18")
    assert isinstance(model, LateFusionUnet)
    x1, x2 = _pair()
    out1, _ = model(x1, x2)
    out1.sum().backward()
    assert all(p.grad is None for p in model.model2.parameters())
    assert encoders_of(model)["s1"] is model.model1.encoder


def test_single_modal_baseline():
    model = build_pretrain_model("single", "resnet18", modality="s1", classes=9)
    assert model.encoder.conv1.weight.shape[1] == 2
    assert model(torch.rand(2, 2, 32, 32)).shape == (2, 9, 32, 32)


def test_bad_input_fails():
    model = build_pretrain_model("mid_fusion", "resnet18")
    assert isinstance(model, MidFusionUnet)
    with pytest.raises(ValueError, match="differ in batch or size"):
        model(torch.rand(1, 2, 32, 32), torch.rand(1, 13, 64, 64))
    with pytest.raises(ValueError, match="divisible by 32"):
        model(torch.rand(1, 2, 48, 48), torch.rand(1, 13, 48, 48))
    with pytest.raises(ValueError, match="unknown model kind"):
        build_pretrain_model("early_fusion", "resnet18")
    single = build_pretrain_model("single", "resnet18", modality="s1")
    with pytest.raises(ValueError, match="needs its modality"):
        encoders_of(single)
    assert encoders_of(single, "s1") == {"s1": single.encoder}
    with pytest.raises(ValueError, match="not a CromSS pretraining model"):
        encoders_of(torch.nn.Linear(2, 2))
