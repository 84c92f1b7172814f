"""The scale network (spec §4.3): sizes of the valid convolutions, heads, deep supervision, the
masked balanced loss and the map channels, on cases worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from eolabels.alignment.channels import BandScaler, MapEncoder, boundary_mask
from eolabels.alignment.loss import balanced_weights, displacement_loss, level_coefficients
from eolabels.alignment.network import AlignNet, JointInput, input_size_for, output_size
from eolabels.alignment.trainer import NetworkSettings, ScaleTrainSettings
from eolabels.models import create_model
from schema_defaults import assert_defaults_match


@pytest.mark.parametrize("size, pools, out", [(76, 2, 20), (92, 2, 36), (108, 2, 52), (220, 3, 100), (124, 3, 4)])
def test_output_sizes_of_the_spec(size, pools, out):
    assert output_size(size, pools) == out


def test_sizes_the_valid_convolutions_cannot_take_are_refused():
    with pytest.raises(ValueError, match="cannot be pooled"):
        output_size(77, 2)  # 73 is odd
    assert input_size_for(20, 2) == 76


def test_forward_shapes_heads_and_range():
    torch.manual_seed(0)
    net = create_model("alignnet", image_channels=4, map_channels=8, pool_count=2, image_base=8, map_base=4,
                       common_base=8, seg_channels=2)
    out = net(torch.randn(3, 4, 76, 76), torch.rand(3, 8, 76, 76))
    assert [tuple(t.shape) for t in out["displacement"]] == [(3, 2, 20, 20)] * 2  # levels 0, 1 at level-0 size
    assert [tuple(t.shape) for t in out["segmentation"]] == [(3, 2, 20, 20)] * 2
    assert all(t.abs().max() < 1 for t in out["displacement"])  # tanh
    # a valid network: the output depends only on its receptive field, so a change in the corner of
    # the input margin outside it leaves the centre output pixel unchanged
    x, m = torch.randn(1, 4, 76, 76), torch.rand(1, 8, 76, 76)
    base = net(x, m)["displacement"][0][0, :, 10, 10]
    x2 = x.clone()
    x2[..., 0, 0] += 100
    assert torch.allclose(net(x2, m)["displacement"][0][0, :, 10, 10], base)


def test_initialisation_of_the_reference():
    net = AlignNet(4, 8, 2, 8, 4, 8)
    conv = net.image_branch.blocks[0][0]
    std = (2.0 / (4 * 9 + 8 * 9)) ** 0.5
    assert torch.all(conv.bias == -0.01)
    assert conv.weight.abs().max() <= 2 * std + 1e-6


def test_joint_input_is_the_level0_displacement():
    torch.manual_seed(1)
    net = AlignNet(4, 3, 2, 4, 2, 4)
    x, m = torch.randn(2, 4, 60, 60), torch.rand(2, 3, 60, 60)
    assert torch.equal(JointInput(net, 4)(torch.cat([x, m], 1)), net(x, m)["displacement"][0])


def test_balanced_weights_by_hand():
    valid = torch.tensor([[[1, 1, 1, 0]]], dtype=torch.bool)
    boundary = torch.tensor([[[1, 0, 0, 0]]], dtype=torch.bool)
    w = balanced_weights(valid, boundary)
    # boundary: 1 pixel of weight 1 -> 1; interior: 2 pixels sharing 0.1 -> 0.05 each; nodata 0
    assert torch.allclose(w, torch.tensor([[[1.0, 0.05, 0.05, 0.0]]]))


def test_displacement_loss_by_hand():
    target = torch.zeros(1, 2, 1, 2)
    level0 = torch.tensor([[[[1.0, 0.0]], [[0.0, 2.0]]]])  # squared errors 1 and 4
    level1 = torch.zeros(1, 2, 1, 2)
    weights = torch.tensor([[[1.0, 3.0]]])
    loss = displacement_loss([level0, level1], target, weights, [0.5, 0.35])
    assert loss.item() == pytest.approx(0.5 * (1 * 1 + 3 * 4) / 4)


def test_level_coefficients_follow_the_reference_schedule():
    assert level_coefficients(0, 1000, 3) == [0.50, 0.35, 0.15]
    assert level_coefficients(25, 1000, 3) == [0.75, 0.20, 0.05]
    assert level_coefficients(999, 1000, 2) == [1.0, 0.0]


def test_map_channels_by_hand():
    labels = np.array([[0, 0, 1], [0, 255, 1], [3, 3, 3]], dtype=np.uint8)
    # (2, 1) has only class-3 or nodata 4-neighbours: no boundary
    assert boundary_mask(labels, 255).astype(int).tolist() == [[0, 1, 1], [1, 0, 1], [1, 0, 1]]
    planes = MapEncoder("osm", 255, "osm_to_osm_groups")(labels)
    assert planes.shape == (8, 3, 3)  # valid, boundary, 6 groups
    assert planes[0].tolist() == [[1, 1, 1], [1, 0, 1], [1, 1, 1]]
    # OSM 0 urban fabric and 3 industrial are group 0 (built), OSM 1 arable land group 1
    assert planes[2].tolist() == [[1, 1, 0], [1, 0, 0], [1, 1, 1]]
    assert planes[3].tolist() == [[0, 0, 1], [0, 0, 1], [0, 0, 0]]


def test_band_scaling_to_minus_one_one_and_missing_bands():
    image = np.stack([np.linspace(0, 100, 101).reshape(1, 101)] * 2)
    scaler = BandScaler.fit([image], ("B2", "B3"), ("B3",), percentiles=(0, 100))
    assert scaler(image, ("B2", "B3"), "t")[0, 0, [0, 50, 100]].tolist() == [-1.0, 0.0, 1.0]
    with pytest.raises(ValueError, match=r"tile x: no band\(s\) \['B3'\]"):
        scaler(image, ("B2", "B4"), "tile x")


def test_dataclass_defaults_are_the_schemas():
    assert_defaults_match(NetworkSettings, "schemas/alignment.yaml", "network")
    assert_defaults_match(ScaleTrainSettings, "schemas/alignment.yaml", "train")
