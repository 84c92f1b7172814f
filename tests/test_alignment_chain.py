"""The chain (spec §4.1-4.2): tiled inference, composition across scales, and the checkpoint checks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from eolabels.alignment.chain import align_tile, predict_field, window_starts
from eolabels.alignment.channels import BandScaler, MapEncoder
from eolabels.alignment.network import AlignNet
from eolabels.alignment.trainer import NetworkSettings, ScaleNetwork, load_scale_network
from eolabels.alignment.warp import backward_warp

BANDS = ("B2", "B3")
NETWORK = NetworkSettings(pool_count=2, image_base=4, map_base=2, common_base=4)


def scale_network(scale: int, constant_px: tuple[float, float] | None = None, seed: int = 0) -> ScaleNetwork:
    """A small scale network; with ``constant_px`` its level-0 head outputs that displacement everywhere."""
    torch.manual_seed(seed)
    model = AlignNet(len(BANDS), 2, NETWORK.pool_count, NETWORK.image_base, NETWORK.map_base, NETWORK.common_base)
    amplitude = 2.0
    if constant_px is not None:
        head = model.displacement.heads[-1]  # level 0
        torch.nn.init.zeros_(head.weight)
        with torch.no_grad():
            head.bias.copy_(torch.tensor([math.atanh(v / amplitude * 0.5) for v in constant_px]))
    scaler = BandScaler(BANDS, (0.0, 0.0), (1.0, 1.0))
    return ScaleNetwork(model.eval(), scale, scaler, MapEncoder("osm", 255), NETWORK, amplitude, 76)


def test_window_origins_cover_the_tile_and_end_flush():
    assert window_starts(50, 20, 16) == [0, 16, 30]
    assert window_starts(20, 20, 20) == [0]
    assert window_starts(12, 20, 20) == [0]


def test_chain_composes_constant_fields_across_scales():
    rng = np.random.default_rng(0)
    image = rng.random((2, 50, 46)).astype(np.float32)
    labels = rng.integers(0, 4, (50, 46)).astype(np.uint8)
    # scale 2 predicts 1 coarse px down (= 2 px at full resolution), scale 1 then 1 px more
    result = align_tile([scale_network(2, (1.0, 0.0)), scale_network(1, (1.0, 0.0))], image, BANDS, labels, overlap=4)
    assert result.field.shape == (2, 50, 46)
    assert np.allclose(result.stages[0][0], 2.0, atol=1e-5) and np.allclose(result.stages[0][1], 0.0, atol=1e-5)
    assert np.allclose(result.field[0], 3.0, atol=1e-5) and np.allclose(result.field[1], 0.0, atol=1e-5)
    # aligned(p) = labels(p - 3 rows): the map moves 3 px down, nodata enters at the top
    assert np.array_equal(result.aligned[3:], labels[:-3]) and (result.aligned[:3] == 255).all()
    assert np.array_equal(result.aligned, backward_warp(labels, -result.field, 255))


def test_tiled_inference_matches_the_network_on_each_window():
    net = scale_network(1, seed=3)
    rng = np.random.default_rng(1)
    image = rng.uniform(-1, 1, (2, 50, 50)).astype(np.float32)
    labels = rng.integers(0, 3, (50, 50)).astype(np.uint8)
    field = predict_field(net, image, labels, overlap=0, max_output=20)
    # the first window: the tile padded by the 28-px margin (image reflected, map nodata)
    padded_image = np.pad(image, ((0, 0), (28, 28), (28, 28)), mode="reflect")[:, :76, :76]
    padded_map = net.encoder(np.pad(labels, 28, constant_values=255))[:, :76, :76]
    with torch.no_grad():
        out = net.model(torch.from_numpy(padded_image)[None], torch.from_numpy(padded_map)[None])["displacement"][0]
    assert np.allclose(field[:, :20, :20], out[0].numpy() / 0.5 * net.amplitude_px, atol=1e-5)
    overlapped = predict_field(net, image, labels, overlap=8, max_output=20)
    assert overlapped.shape == field.shape and np.allclose(overlapped[:, :12, :12], field[:, :12, :12], atol=1e-5)
    # one large window over the whole tile: the network on the tile padded to the input of a 52-px output
    whole = predict_field(net, image, labels)
    big_image = np.pad(image, ((0, 0), (28, 28), (28, 28)), mode="reflect")
    big_image = np.pad(big_image, ((0, 0), (0, 2), (0, 2)), mode="edge")
    big_map = net.encoder(np.pad(labels, ((28, 30), (28, 30)), constant_values=255))
    with torch.no_grad():
        out = net.model(torch.from_numpy(big_image)[None], torch.from_numpy(big_map)[None])["displacement"][0]
    assert out.shape[-1] == 52 and np.allclose(whole, out[0, :, :50, :50].numpy() / 0.5 * net.amplitude_px, atol=1e-5)


def test_chain_refuses_fine_to_coarse_and_other_grids():
    image = np.zeros((2, 20, 20), np.float32)
    with pytest.raises(ValueError, match="coarse to fine"):
        align_tile([scale_network(1), scale_network(2)], image, BANDS, np.zeros((20, 20), np.uint8))
    with pytest.raises(ValueError, match="tile t7: image .* and map .* are on different grids"):
        align_tile([scale_network(1)], image, BANDS, np.zeros((20, 24), np.uint8), where="tile t7")


def test_checkpoint_of_another_scale_or_band_set_fails_naming_the_file(tmp_path):
    path = tmp_path / "scale2.pt"
    scale_network(2, seed=5).save(path)
    loaded = load_scale_network(path, scale=2, bands=BANDS)
    assert loaded.scale == 2 and loaded.scaler.bands == BANDS
    assert all(torch.equal(a, b) for a, b in zip(loaded.model.state_dict().values(),
                                                 scale_network(2, seed=5).model.state_dict().values()))
    with pytest.raises(ValueError, match=r"scale2\.pt: checkpoint of the scale-2 network, the chain asks for scale 1"):
        load_scale_network(path, scale=1)
    with pytest.raises(ValueError, match=r"scale2\.pt: network trained on bands \['B2', 'B3'\], asked for \['B2', 'B4'\]"):
        load_scale_network(path, bands=("B2", "B4"))
    other = tmp_path / "not_a_network.pt"
    torch.save({"state_dict": {}}, other)
    with pytest.raises(ValueError, match="not_a_network.pt: not an alignment scale-network checkpoint"):
        load_scale_network(other)
