"""What the alignment network groups together (issue 13 item 7): the neighbour ranking under a
perceptual distance and under the network's similarity on tiny cases worked out by hand, and the
figures written."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from eolabels.alignment.channels import BandScaler, MapEncoder
from eolabels.alignment.figures import neighbours_figure, similarity_histograms
from eolabels.alignment.neighbours import (
    group_patches,
    nearest_neighbours,
    perceptual_distance,
    query_rows,
)
from eolabels.alignment.network import AlignNet
from eolabels.alignment.rounds import AlignSettings
from eolabels.alignment.trainer import NetworkSettings, ScaleNetwork

# four samples' activations (2 values each) and their perceptual distances |a - b|^2 / 2, by hand:
# d(a,b) = 1/2, d(a,c) = 4/2 = 2, d(a,d) = 25/2, d(b,c) = (1 + 4)/2 = 5/2, d(b,d) = (4 + 16)/2 = 10,
# d(c,d) = (9 + 4)/2 = 13/2
FEATURES = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [3.0, 4.0]])
HAND = np.array([[0, 0.5, 2, 12.5], [0.5, 0, 2.5, 10], [2, 2.5, 0, 6.5], [12.5, 10, 6.5, 0]])


def test_perceptual_distance_is_the_mean_squared_activation_difference():
    np.testing.assert_allclose(perceptual_distance(FEATURES).numpy(), HAND, atol=1e-12)
    # any activation shape is flattened: (n, channels, h, w) gives the same numbers
    np.testing.assert_allclose(perceptual_distance(FEATURES.reshape(4, 2, 1, 1)).numpy(), HAND, atol=1e-12)


def test_ranking_by_distance_and_by_similarity_leaves_the_query_out():
    distance = torch.from_numpy(HAND)
    assert nearest_neighbours(distance, [0, 2, 3], 2, larger_is_closer=False) == [[1, 2], [0, 1], [2, 1]]
    # a similarity ranks the other way; ties go to the earlier sample
    similarity = torch.tensor([[1.0, 0.2, 0.9, 0.9], [0.2, 1.0, -0.5, 0.3], [0.9, -0.5, 1.0, 0.1], [0.9, 0.3, 0.1, 1.0]])
    assert nearest_neighbours(similarity, [0, 1], 3, larger_is_closer=True) == [[2, 3, 1], [3, 0, 2]]
    with pytest.raises(ValueError, match="4 neighbours asked of 4 samples"):
        nearest_neighbours(similarity, [0], 4, larger_is_closer=True)


def test_neighbour_settings_must_fit_the_patches():
    with pytest.raises(ValueError, match=r"neighbour_k \(8\) below it"):
        AlignSettings(neighbour_samples=8, neighbour_k=8)
    with pytest.raises(ValueError, match=r"neighbour_queries \(9\) must be at most neighbour_samples \(8\)"):
        AlignSettings(neighbour_samples=8, neighbour_queries=9)


def test_queries_spread_over_the_samples():
    assert query_rows(10, 3) == [0, 4, 9] and query_rows(5, 1) == [0]
    with pytest.raises(ValueError, match="6 query patches asked of 5"):
        query_rows(5, 6)


BANDS = ("B2", "B3", "B4")


@pytest.fixture(scope="module")
def tiny():
    """A small untrained scale network and 6 patches, patch 4 a copy of patch 0."""
    torch.manual_seed(0)
    network = NetworkSettings(pool_count=1, image_base=2, map_base=2, common_base=2)
    model = AlignNet(len(BANDS), 2, network.pool_count, network.image_base, network.map_base, network.common_base)
    net = ScaleNetwork(model.eval(), 1, BandScaler(BANDS, (0.0,) * 3, (1.0,) * 3), MapEncoder("osm", 255), network, 2.0, 30)
    image = torch.rand(6, len(BANDS), 30, 30) * 2 - 1
    maps = (torch.rand(6, 2, 30, 30) > 0.7).float()
    image[4], maps[4] = image[0], maps[0]
    patches = {"image": image, "map": maps}
    return net, patches, group_patches(net, patches, queries=2, k=2, sketch_dim=None, seed=0)


def test_a_duplicated_patch_is_the_nearest_under_both(tiny):
    net, _, groups = tiny
    assert groups.queries == [0, 5]
    k = groups.similarity
    np.testing.assert_allclose(torch.diagonal(k).numpy(), 1.0, atol=1e-9)  # k(x, x) = 1
    np.testing.assert_allclose(k.numpy(), k.numpy().T, atol=1e-9)
    assert k[0, 4] == pytest.approx(1.0, abs=1e-9) and (k[0, [1, 2, 3, 5]] < 1 - 1e-6).all()
    assert groups.by_network[0][0] == 4 and groups.by_perceptual[0][0] == 4
    assert groups.perceptual[0, 4] == 0 and (groups.perceptual[0, [1, 2, 3, 5]] > 0).all()
    assert next(model_param for model_param in net.model.parameters()).dtype == torch.float32  # left as it was


def test_the_figures_are_written(tiny, tmp_path):
    _, patches, groups = tiny
    groups.save(tmp_path / "neighbours.npz")
    saved = np.load(tmp_path / "neighbours.npz")
    assert saved["by_network"].tolist() == groups.by_network and saved["similarity"].shape == (6, 6)
    neighbours_figure(patches["image"].numpy(), patches["map"].numpy(), BANDS, saved["similarity"], saved["perceptual"],
                      groups.queries, groups.by_network, groups.by_perceptual, tmp_path / "n.png", "round 1")
    similarity_histograms({"round 1": saved["similarity"], "round 2": saved["similarity"] ** 2}, 0,
                          tmp_path / "h.png", "one patch")
    for png in ("n.png", "h.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and (tmp_path / png).stat().st_size > 5_000
