"""Fine-tuning analyses (CromSS Figs. 8 c,d, 12, 13): KL values and explained variances worked out by
hand on tiny inputs, the layer names of real smp models and of the authors' checkpoints, and the
figures rendered to PNG."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.image import imread

from eolabels.finetune.analysis import (
    bn_gaussian_kl,
    bn_histogram_kl,
    bn_layer_names,
    cumulative_explained_variance,
    gaussian_kl,
    group_layers,
    histogram_kl,
    pixel_matrix,
    stage_explained_variance,
    stage_features,
    weight_kl,
)
from eolabels.finetune.figures import (
    label_colours,
    plot_explained_variance,
    plot_layer_kl,
    plot_segmentation_maps,
    rgb_composite,
)
from eolabels.models import create_model
from eolabels.report.figures import save_figure
from eolabels.tables import load_schema

ARCH_FIXTURE = Path(__file__).resolve().parents[2] / "shared" / "specs" / "fixtures" / "cromss_arch.json"


def _model(encoder: str = "resnet18", arch: str = "fpn", seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return create_model(arch, encoder_name=encoder, encoder_weights=None, in_channels=9, classes=9)


def _clone(state):
    return {k: v.detach().clone() for k, v in state.items()}


# --- histogram KL (Fig. 12) -------------------------------------------------------------------------


def test_histogram_kl_two_bins_by_hand():
    # joint range [0, 1], bins [0, .5) and [.5, 1]: P = (1/2, 1/2), Q = (1, 0); with ε = .01 each bin
    # gets + .01 and both renormalise by 1.02: p = (.51, .51)/1.02, q = (1.01, .01)/1.02
    kl = histogram_kl(torch.tensor([0.0, 1.0]), torch.tensor([0.0, 0.0]), bins=2, eps=0.01)
    expected = 0.5 * math.log(0.51 / 1.01) + 0.5 * math.log(0.51 / 0.01)
    assert kl == pytest.approx(expected, rel=1e-12)
    assert kl == pytest.approx(1.6242660, abs=1e-6)


def test_histogram_kl_direction_is_before_to_after():
    # range [0, 3], 4 bins of width .75: before counts (1,1,1,1), after counts (2,0,0,2); ε = .01
    before, after = np.array([0.0, 1.0, 2.0, 3.0]), np.array([0.0, 0.0, 3.0, 3.0])
    p = np.array([0.26, 0.26, 0.26, 0.26]) / 1.04
    q = np.array([0.51, 0.01, 0.01, 0.51]) / 1.04
    forward = 0.5 * math.log(676 / 51)  # = 2·.25·log(.26/.51) + 2·.25·log(.26/.01)
    assert float(np.sum(p * np.log(p / q))) == pytest.approx(forward)
    assert histogram_kl(before, after, bins=4, eps=0.01) == pytest.approx(forward, rel=1e-12)
    backward = 2 * 0.51 / 1.04 * math.log(0.51 / 0.26) + 2 * 0.01 / 1.04 * math.log(0.01 / 0.26)
    assert histogram_kl(after, before, bins=4, eps=0.01) == pytest.approx(backward, rel=1e-12)
    assert backward == pytest.approx(0.598, abs=1e-3) and forward == pytest.approx(1.292, abs=1e-3)


def test_histogram_kl_identical_and_constant_are_zero():
    x = torch.randn(1000, generator=torch.Generator().manual_seed(0))
    assert histogram_kl(x, x.clone()) == 0.0
    assert histogram_kl(torch.full((5,), 2.0), torch.full((3,), 2.0)) == 0.0
    # same distribution, other order and size: same histogram, KL 0
    assert histogram_kl(torch.tensor([0.0, 1.0]), torch.tensor([1.0, 0.0, 1.0, 0.0])) == pytest.approx(0.0, abs=1e-15)


def test_histogram_kl_bad_input_names_the_tensor():
    with pytest.raises(ValueError, match=r"decoder\.w \(after\).*non-finite"):
        histogram_kl(torch.zeros(3), torch.tensor([0.0, float("nan"), 1.0]), name="decoder.w")
    with pytest.raises(ValueError, match="eps"):
        histogram_kl(torch.zeros(3), torch.ones(3), eps=0.0)


def test_weight_kl_picks_weights_in_order_and_checks_keys():
    before = {
        "encoder.conv.weight": torch.tensor([0.0, 1.0]),
        "encoder.bn.weight": torch.tensor([1.0, 1.0]),
        "encoder.bn.running_mean": torch.tensor([0.0, 5.0]),
        "encoder.bn.num_batches_tracked": torch.tensor(3),
        "decoder.conv.bias": torch.tensor([0.0, 1.0]),
    }
    after = _clone(before)
    after["encoder.conv.weight"] = torch.tensor([0.0, 0.0])
    after["encoder.bn.running_mean"] = torch.tensor([9.0, 9.0])
    after["decoder.conv.bias"] = torch.tensor([1.0, 1.0])
    kl = weight_kl(before, after, bins=2, eps=0.01)
    assert list(kl) == ["encoder.conv.weight", "encoder.bn.weight"]
    before["encoder.conv2.weight"] = after["encoder.conv2.weight"] = torch.ones(2, 1, 1, 1)
    assert list(weight_kl(before, after, min_ndim=2)) == ["encoder.conv2.weight"]
    assert kl["encoder.conv.weight"] == pytest.approx(1.6242660, abs=1e-6)
    assert kl["encoder.bn.weight"] == 0.0
    with_bias = weight_kl(before, after, bins=2, eps=0.01, kinds=("weight", "bias"))
    # bias (0, 1) -> (1, 1): mirror image of the hand case above, same KL
    assert with_bias["decoder.conv.bias"] == pytest.approx(1.6242660, abs=1e-6)

    missing = {k: v for k, v in after.items() if k != "encoder.bn.weight"}
    with pytest.raises(KeyError, match=r"only before: \['encoder\.bn\.weight'\]"):
        weight_kl(before, missing)
    assert list(weight_kl(before, missing, strict=False)) == ["encoder.conv.weight", "encoder.conv2.weight"]
    with pytest.raises(KeyError, match=r"only after: \['decoder\.new\.weight'\]"):
        weight_kl(before, {**after, "decoder.new.weight": torch.zeros(2), "decoder.new.running_var": torch.ones(2)})
    with pytest.raises(ValueError, match=r"encoder\.conv\.weight has shape \(2,\) before and \(3,\)"):
        weight_kl(before, {**after, "encoder.conv.weight": torch.zeros(3)})


def test_weight_kl_on_a_real_model():
    model = _model()
    before = _clone(model.state_dict())
    assert all(v == 0.0 for v in weight_kl(before, model).values())
    with torch.no_grad():
        model.encoder.layer2[0].conv1.weight.mul_(3.0)  # wider spread: mass moves to the outer bins
    kl = weight_kl(before, model)
    n_weights = sum(1 for k in before if k.endswith(".weight"))
    assert len(kl) == n_weights
    assert kl["encoder.layer2.0.conv1.weight"] > 0.1
    assert all(v == 0.0 for k, v in kl.items() if k != "encoder.layer2.0.conv1.weight")
    groups = group_layers(kl)
    assert "layer2.0.conv1.weight" in groups["encoder"] and "conv1.weight" in groups["encoder"]
    assert len(groups["encoder"]) + len(groups["decoder"]) == n_weights - 1  # minus segmentation_head.0
    assert all(k.startswith("segmentation_head") for k in kl if not k.startswith(("encoder.", "decoder.")))


# --- BN statistics (Fig. 8 c,d) ---------------------------------------------------------------------


def _bn_state(mean, var, layer="encoder.bn1"):
    return {f"{layer}.weight": torch.ones(len(mean)), f"{layer}.running_mean": torch.tensor(mean),
            f"{layer}.running_var": torch.tensor(var), f"{layer}.num_batches_tracked": torch.tensor(1)}


def test_gaussian_kl_by_hand():
    # N(0,1)‖N(1,1): (μp-μq)²/2 = .5 ; N(0,1)‖N(0,4): ½log 4 + 1/8 − ½ = log 2 − .375
    kl = gaussian_kl(torch.tensor([0.0, 0.0]), torch.tensor([1.0, 1.0]),
                     torch.tensor([1.0, 0.0]), torch.tensor([1.0, 4.0]))
    assert kl.tolist() == pytest.approx([0.5, math.log(2) - 0.375])
    before = {**_bn_state([0.0, 0.0], [1.0, 1.0]), **_bn_state([2.0], [3.0], "decoder.blocks.0.conv1.1")}
    after = {**_bn_state([1.0, 0.0], [1.0, 4.0]), **_bn_state([2.0], [3.0], "decoder.blocks.0.conv1.1")}
    per_layer = bn_gaussian_kl(before, after, var_eps=0.0)
    assert list(per_layer) == ["encoder.bn1", "decoder.blocks.0.conv1.1"]
    assert per_layer["encoder.bn1"] == pytest.approx((0.5 + math.log(2) - 0.375) / 2)  # = 0.409074
    assert per_layer["decoder.blocks.0.conv1.1"] == 0.0
    assert group_layers(per_layer) == {"encoder": {"bn1": pytest.approx(0.4090736)},
                                       "decoder": {"blocks.0.conv1.1": 0.0}}
    # the variance floor: var 0 -> 1e-5 instead of a division by zero
    dead = bn_gaussian_kl(_bn_state([0.0], [0.0]), _bn_state([0.0], [1.0]))
    v, w = 1e-5, 1.0 + 1e-5
    assert dead["encoder.bn1"] == pytest.approx(0.5 * math.log(w / v) + v / (2 * w) - 0.5)
    with pytest.raises(ValueError, match=r"encoder\.bn1.*var"):
        bn_gaussian_kl(_bn_state([0.0], [0.0]), _bn_state([0.0], [1.0]), var_eps=0.0)


def test_bn_histogram_kl_by_hand():
    before, after = _bn_state([0.0, 1.0], [1.0, 1.0]), _bn_state([0.0, 0.0], [1.0, 1.0])
    assert bn_histogram_kl(before, after, "running_mean", bins=2, eps=0.01) == {
        "encoder.bn1": pytest.approx(1.6242660, abs=1e-6)}
    assert bn_histogram_kl(before, after, "running_var", bins=2, eps=0.01) == {"encoder.bn1": 0.0}
    with pytest.raises(ValueError, match="statistic"):
        bn_histogram_kl(before, after, "weight")
    with pytest.raises(KeyError, match="BN layers differ"):
        bn_histogram_kl(before, {**after, **_bn_state([0.0], [1.0], "decoder.bn")})


def test_bn_kl_on_real_models_encoder_and_decoder():
    model = _model(arch="unet")
    names = bn_layer_names(model.state_dict())
    enc = [n for n in names if n.startswith("encoder.")]
    dec = [n for n in names if n.startswith("decoder.")]
    assert len(enc) == 20  # resnet18: bn1 + 8 blocks × 2 + 3 downsample.1
    assert "encoder.layer2.0.downsample.1" in enc and "encoder.layer4.1.bn2" in enc
    assert dec == [f"decoder.blocks.{k}.conv{j}.1" for k in range(5) for j in (1, 2)]
    before = _clone(model.state_dict())
    model.train()
    with torch.no_grad():
        model(torch.randn(2, 9, 64, 64, generator=torch.Generator().manual_seed(1)) * 3 + 2)
    for kl in (bn_gaussian_kl(before, model), bn_histogram_kl(before, model, "running_var"),
               bn_histogram_kl(before, model, "running_mean")):
        assert list(kl) == names and all(v > 0 for v in kl.values())
        grouped = group_layers(kl)
        assert len(grouped["encoder"]) == 20 and len(grouped["decoder"]) == 10
    # an FPN decoder has GroupNorm only: its group is empty but present
    assert group_layers(bn_gaussian_kl(_model(), _model(seed=1)))["decoder"] == {}


@pytest.mark.skipif(not ARCH_FIXTURE.exists(), reason=f"{ARCH_FIXTURE} absent (shared specs not mounted)")
def test_bn_layer_names_of_the_authors_checkpoints():
    arch = json.loads(ARCH_FIXTURE.read_text())
    names = bn_layer_names(arch["midF_s2b13"]["state_dict"])
    grouped = group_layers(dict.fromkeys(names, 0.0), groups=("net.encoder", "net.encoder1", "net.decoder"))
    # ResNet-50: bn1 + 16 bottlenecks × 3 + 4 downsample.1 = 53 per encoder; UNet decoder 5 blocks × 2
    assert len(grouped["net.encoder"]) == 53 and len(grouped["net.encoder1"]) == 53
    assert list(grouped["net.decoder"]) == [f"blocks.{k}.conv{j}.1" for k in range(5) for j in (1, 2)]
    assert "layer1.0.downsample.1" in grouped["net.encoder"] and "layer4.2.bn3" in grouped["net.encoder1"]


# --- PCA over stage features (Fig. 13) --------------------------------------------------------------


def test_cumulative_explained_variance_on_a_known_plane():
    # pixels a·u + b·v on a 2-d subspace of R^5 with u ⟂ v unit vectors; a = ±3, b = ±1 are zero-mean and
    # uncorrelated, so the variances are 9 and 1: ratios .9 and .1, cumulative .9, 1, 1
    u = np.array([1.0, 1.0, 0.0, 0.0, 0.0]) / math.sqrt(2)
    v = np.array([0.0, 0.0, 3.0, 4.0, 0.0]) / 5.0
    a, b = np.array([3.0, -3.0, 3.0, -3.0]), np.array([1.0, 1.0, -1.0, -1.0])
    x = a[:, None] * u + b[:, None] * v + 7.0  # an offset the PCA centres away
    curve = cumulative_explained_variance(x, max_components=3)
    assert curve == pytest.approx([0.9, 1.0, 1.0], abs=1e-12)
    assert cumulative_explained_variance(x, max_components=10).size == 4  # capped by the 4 pixels
    with pytest.raises(ValueError, match="no variance"):
        cumulative_explained_variance(np.ones((6, 3)), 2)


def test_pixel_matrix_rows_are_pixels_and_subsampling_is_seeded():
    t = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).reshape(2, 3, 2, 2)
    m = pixel_matrix(t)
    assert m.shape == (8, 3)
    assert m[5].tolist() == t[1, :, 0, 1].tolist() == [13.0, 17.0, 21.0]
    sub = pixel_matrix(t, max_pixels=3, seed=4)
    assert sub.shape == (3, 3) and np.array_equal(sub, pixel_matrix(t, max_pixels=3, seed=4))
    assert all(any(np.array_equal(r, row) for row in m) for r in sub)


@pytest.mark.parametrize("encoder, channels", [("resnet18", [64, 64, 128, 256, 512]),
                                               ("tu-mobilenetv3_small_050", [16, 8, 16, 24, 288])])
def test_stage_features_of_smp_encoders(encoder, channels):
    model = _model(encoder)
    model.train()
    feats = stage_features(model.encoder, torch.randn(2, 9, 64, 64))
    assert [f.shape[1] for f in feats] == channels
    assert [f.shape[-1] for f in feats] == [32, 16, 8, 4, 2]
    assert model.encoder.training  # mode restored


def test_stage_explained_variance_batches_match_the_whole():
    encoder = _model().encoder
    images = torch.randn(3, 9, 32, 32, generator=torch.Generator().manual_seed(2))
    batched = stage_explained_variance(encoder, images, max_components=6, max_pixels=10**6, batch_size=2)
    assert list(batched) == ["stage1", "stage2", "stage3", "stage4", "stage5"]
    for s, feature in enumerate(stage_features(encoder, images)):
        whole = cumulative_explained_variance(feature, 6, max_pixels=None)
        assert batched[f"stage{s + 1}"] == pytest.approx(whole, abs=1e-5)
    assert batched["stage5"].size == 3  # 3 images × 1×1 pixels
    small = stage_explained_variance(encoder, images, max_components=4, max_pixels=50, seed=3, batch_size=2)
    assert all(np.all(np.diff(c) >= -1e-12) and c[-1] <= 1 + 1e-12 for c in small.values())


# --- figures ----------------------------------------------------------------------------------------


def test_label_colours_and_rgb_composite():
    schema = load_schema("dw")
    rgb = label_colours(np.array([[0, 6], [255, 8]], dtype=np.uint8), schema)
    assert rgb[0, 0].tolist() == pytest.approx([0x41 / 255, 0x9B / 255, 0xDF / 255])  # water #419bdf
    assert rgb[0, 1].tolist() == pytest.approx([0xC4 / 255, 0x28 / 255, 0x1B / 255])  # built #c4281b
    assert rgb[1, 0].tolist() == [1.0, 1.0, 1.0]
    image = np.stack([np.arange(100.0).reshape(10, 10)] * 4)
    comp = rgb_composite(image, (3, 2, 1), low=0, high=100)
    assert comp.shape == (10, 10, 3) and comp[0, 0, 0] == 0.0 and comp[-1, -1, 2] == 1.0
    assert comp[5, 0, 1] == pytest.approx(50 / 99)


def test_segmentation_maps_figure(tmp_path):
    schema = load_schema("dw")
    rng = np.random.default_rng(0)
    images = [rng.random((16, 16, 3)) for _ in range(2)]
    truths = [rng.integers(0, 9, (16, 16)) for _ in range(2)]
    preds = {name: [rng.integers(0, 9, (16, 16)) for _ in range(2)] for name in ("random", "S2", "CromSS")}
    fig = plot_segmentation_maps(images, truths, preds, schema, data="synthetic")
    assert len(fig.axes) == 2 * 5
    assert [ax.get_title() for ax in fig.axes[:5]] == ["sample 0: image", "ground truth", "random", "S2", "CromSS"]
    assert np.allclose(fig.axes[6].images[0].get_array(), label_colours(truths[1], schema))
    assert len(fig.legends[0].get_texts()) == 9
    assert "synthetic world" in fig._suptitle.get_text().lower()
    out = save_figure(fig, tmp_path / "maps.png")
    assert imread(out).ndim == 3
    real = plot_segmentation_maps(images, truths, preds, schema, data="local:ssl4eo_s12")
    assert "real data: local:ssl4eo_s12" in real._suptitle.get_text()
    with pytest.raises(ValueError, match="CromSS"):
        plot_segmentation_maps(images, truths, {**preds, "CromSS": preds["CromSS"][:1]}, schema, "synthetic")


def test_layer_kl_figure(tmp_path):
    per_source = {
        "random": {"encoder": {"bn1": 0.1, "layer1.0.bn1": 0.2}, "decoder": {"blocks.0.conv1.1": 0.3}},
        "S2": {"encoder": {"bn1": 0.4, "layer1.0.bn1": 0.5}, "decoder": {"blocks.0.conv1.1": 0.6}},
        "CromSS": {"encoder": {"bn1": 0.7, "layer1.0.bn1": 0.8}, "decoder": {}},
    }
    fig = plot_layer_kl(per_source, data="synthetic", title="Fig. 12: weight KL", log_y=True)
    encoder_ax, decoder_ax = fig.axes
    assert [line.get_label() for line in encoder_ax.lines] == ["random", "S2", "CromSS"]
    assert encoder_ax.lines[2].get_ydata().tolist() == [0.7, 0.8]
    assert len(decoder_ax.lines) == 2 and decoder_ax.lines[1].get_ydata().tolist() == [0.6]
    assert [t.get_text() for t in encoder_ax.get_xticklabels()] == ["bn1", "layer1.0.bn1"]
    assert "synthetic world" in fig._suptitle.get_text().lower()
    assert imread(save_figure(fig, tmp_path / "kl.png")).ndim == 3
    empty = plot_layer_kl({"random": {"encoder": {"bn1": 0.1}, "decoder": {}}}, "synthetic", "Fig. 8 c,d")
    assert len(empty.axes) == 2 and "no layers in the decoder" in empty.axes[1].texts[0].get_text()


def test_explained_variance_figure(tmp_path):
    curves = {src: {f"stage{s}": np.linspace(0.5, 1.0, 4) ** k for s in range(1, 6)}
              for k, src in enumerate(("random", "CromSS"), start=1)}
    fig = plot_explained_variance(curves, data="synthetic")
    assert len(fig.axes) == 5 and all(len(ax.lines) == 2 for ax in fig.axes)
    assert fig.axes[3].lines[1].get_ydata().tolist() == pytest.approx((np.linspace(0.5, 1, 4) ** 2).tolist())
    assert fig.axes[3].lines[1].get_xdata().tolist() == [1, 2, 3, 4]
    assert "synthetic world" in fig._suptitle.get_text().lower()
    assert imread(save_figure(fig, tmp_path / "pca.png")).ndim == 3
