"""Label embedding, reconstruction and tile coverage (spec §5)."""

from __future__ import annotations

import pytest
import torch

from eolabels.epitome.embed import (
    embed_coarse_labels,
    embed_labels_exact,
    embed_labels_sampled,
    label_distribution,
    one_hot_labels,
)
from eolabels.epitome.model import GaussianEpitome
from eolabels.epitome.reconstruct import reconstruct_patch_labels, reconstruct_tile
from eolabels.epitome.patches import PatchOrigins, covering_origins, crop, sample_origins, window_starts


def random_posterior(layers, batch, height, width, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.rand(layers, batch, height, width, generator=g, dtype=torch.float64)
    return q / q.sum(dim=(0, 2, 3), keepdim=True)


def test_exact_embedding_matches_loops():
    layers, batch, height, width, size, classes = 2, 3, 6, 5, 3, 4
    q = random_posterior(layers, batch, height, width)
    labels = torch.rand(batch, classes, size, size, dtype=torch.float64)
    expected = torch.zeros(classes, layers, height, width, dtype=torch.float64)
    for b in range(batch):
        for l in range(layers):
            for u in range(height):
                for v in range(width):
                    for i in range(size):
                        for j in range(size):
                            m, n = (u + i - 1) % height, (v + j - 1) % width
                            expected[:, l, m, n] += q[l, b, u, v] * labels[b, :, i, j]
    assert torch.allclose(embed_labels_exact(q, labels), expected, atol=1e-12)


def test_sampled_embedding_equals_exact_for_point_posteriors_and_in_expectation():
    layers, height, width, size, classes = 2, 7, 6, 3, 3
    ids = torch.randint(3, (2, size, size), generator=torch.Generator().manual_seed(1))
    labels = one_hot_labels(ids, classes)
    point = torch.zeros(layers, 2, height, width, dtype=torch.float64)
    point[1, 0, 0, 5] = 1.0  # wraps around two borders
    point[0, 1, 3, 2] = 1.0
    sampled = embed_labels_sampled(point, labels, samples=16)
    assert torch.equal(sampled, 16 * embed_labels_exact(point, labels))

    q = random_posterior(layers, 2, height, width, seed=2)
    many = embed_labels_sampled(q, labels, samples=40000, generator=torch.Generator().manual_seed(3)) / 40000
    assert torch.allclose(many, embed_labels_exact(q, labels), atol=0.02)


def test_coarse_embedding_adds_whole_posterior_to_centre_class():
    q = random_posterior(1, 4, 3, 3)
    lrmap = embed_coarse_labels(q, torch.tensor([2, 0, 2, 1]), num_classes=4)
    assert lrmap.shape == (4, 1, 3, 3)
    assert torch.allclose(lrmap[2, 0], q[0, 0] + q[0, 2])
    assert lrmap.sum(dim=(1, 2, 3)).tolist() == pytest.approx([1.0, 1.0, 2.0, 0.0])


def test_label_distribution_uniform_where_never_hit():
    counts = torch.tensor([[[[2.0, 0.0]]], [[[6.0, 0.0]]]])
    probs = label_distribution(counts)
    assert probs[:, 0, 0, 0].tolist() == [0.25, 0.75]
    assert probs[:, 0, 0, 1].tolist() == [0.5, 0.5]


def test_one_hot_ignores_unlabelled():
    encoded = one_hot_labels(torch.tensor([[[0, 255], [2, 1]]]), 3)
    assert encoded.shape == (1, 3, 2, 2)
    assert encoded[0, :, 0, 1].sum() == 0 and encoded[0, 2, 1, 0] == 1


def test_reconstruction_reads_the_aligned_window():
    label_map = torch.arange(20).reshape(4, 5) % 3
    probs = one_hot_labels(label_map[None], 3)[0].unsqueeze(1).double()  # K×L×H×W with L = 1
    positions = torch.tensor([[0 * 5 + 0], [2 * 5 + 3]])  # centres (0, 0) and (2, 3), one sample each
    votes = reconstruct_patch_labels(probs, positions, 3)
    assert votes.shape == (2, 3, 3, 3)
    rows0, cols0 = [3, 0, 1], [4, 0, 1]
    assert torch.equal(votes[0].argmax(0), label_map[rows0][:, cols0])
    assert torch.equal(votes[1].argmax(0), label_map[1:4, 2:5])


def test_window_starts_cover_every_pixel():
    for length, size, stride in [(10, 3, 3), (11, 5, 2), (7, 7, 7), (9, 1, 1), (12, 4, 3)]:
        starts = window_starts(length, size, stride)
        covered = set()
        for s in starts:
            covered.update(range(s, s + size))
        assert covered == set(range(length)) and starts[-1] == length - size
    with pytest.raises(ValueError, match="cover every pixel"):
        window_starts(9, 1, 4)
    origins = covering_origins(10, 8, 3, 3)
    assert len(origins) == len(window_starts(10, 3, 3)) * len(window_starts(8, 3, 3))


def test_crop_and_sampling_stay_inside_images():
    images = [torch.arange(30.0).reshape(1, 5, 6), torch.arange(100.0, 135.0).reshape(1, 7, 5)]
    origins = sample_origins([(5, 6), (7, 5)], 3, 50, torch.Generator().manual_seed(0))
    patches = crop(images, origins)
    assert patches.shape == (50, 1, 3, 3)
    for k in range(50):
        image = images[int(origins.image[k])][0]
        top, left = int(origins.top[k]), int(origins.left[k])
        assert torch.equal(patches[k, 0], image[top : top + 3, left : left + 3])
    label_maps = [image[0].long() for image in images]
    centres = crop(label_maps, PatchOrigins(origins.image, *origins.centres(), 1))
    assert torch.equal(centres[:, 0, 0], patches[:, 0, 1, 1].long())


def test_reconstruct_tile_recovers_labels_through_the_self_epitome():
    g = torch.Generator().manual_seed(5)
    image = torch.rand(3, 14, 11, generator=g)
    labels = torch.randint(4, (14, 11), generator=g)
    epitome = GaussianEpitome.from_image(image)
    probs = one_hot_labels(labels[None], 4)[0].unsqueeze(1).double()
    scores = reconstruct_tile(epitome, image, probs, patch_size=5, stride=3, temperature=1.0, generator=g)
    assert scores.shape == (4, 14, 11)
    assert torch.equal(scores.argmax(0), labels)
    assert torch.all(scores.sum(0) >= 1)  # every pixel covered at least once
