import numpy as np
import pytest
import torch

from eolabels.cromss.smoothing import (
    label_smoothing_prior,
    smoothed_target,
    spatial_prior,
    temporal_prior,
)


def test_st_prior_matches_reference(cases, golden):
    labels4 = cases["loss/labels4"]  # (B, 4, H, W); the chosen season is 2
    assert np.array_equal(labels4[:, 2], cases["loss/y"])
    golden("loss/smooth_prior", np.stack([label_smoothing_prior(t, 2, "ts") for t in labels4]))


@pytest.mark.parametrize("kind", ["ts", "t", "s"])
@pytest.mark.parametrize("bands", ["b13", "b9"])
def test_dataset_priors_match_reference(cases, golden, kind, bands):
    labels4 = cases["ds/ssl4eo/raw_labels_1"]  # SSL4EODataset[1], season 1
    golden(f"ds/ssl4eo/{kind}_{bands}/smooth_prior", label_smoothing_prior(labels4, 1, kind))
    assert np.array_equal(cases[f"ds/ssl4eo/{kind}_{bands}/ns"], labels4[1])


def test_smoothed_targets_match_reference(cases, golden):
    y = torch.from_numpy(cases["loss/y"])
    prior = torch.from_numpy(cases["loss/smooth_prior"])
    golden("loss/smoothed_ts_0.15_0.05", smoothed_target(y, prior, [0.15, 0.05]))
    golden("loss/smoothed_prior_only_0.1", smoothed_target(y, prior, [0.1]))
    golden("loss/smoothed_uniform_only_0.1", smoothed_target(y, None, [0.1]))


def test_constant_label_map_gives_one_hot_prior():
    prior = spatial_prior(np.full((30, 30), 2), num_classes=4)
    assert prior.dtype == np.float32 and prior.shape == (4, 30, 30)
    np.testing.assert_allclose(prior[2], 1.0, rtol=1e-6)
    np.testing.assert_allclose(prior[[0, 1, 3]], 0.0, atol=1e-7)


def test_temporal_prior_is_season_frequency_by_hand():
    seasons = np.stack([np.zeros((20, 20), int)] * 3 + [np.ones((20, 20), int)])
    prior = temporal_prior(seasons, num_classes=3)
    np.testing.assert_allclose(prior[:, 10, 10], [0.75, 0.25, 0.0], atol=1e-6)
    ts = label_smoothing_prior(seasons, 3, "ts", num_classes=3)
    np.testing.assert_allclose(ts[:, 10, 10], [0.375, 0.625, 0.0], atol=1e-6)


def test_blur_is_spatial_and_per_class():
    # left half class 0, right half class 1: the prior mixes only near the border, sums to one
    label = np.zeros((40, 40), int)
    label[:, 20:] = 1
    prior = spatial_prior(label, num_classes=3)
    np.testing.assert_allclose(prior.sum(axis=0), 1.0, rtol=1e-6)
    assert prior[0, 20, 0] == pytest.approx(1.0, abs=1e-4)
    assert 0.3 < prior[0, 20, 20] < 0.5 and prior[2].max() == 0.0


def test_smoothed_target_by_hand():
    y = torch.tensor([[[0]]])
    prior = torch.tensor([0.5, 0.5]).view(1, 2, 1, 1)
    t = smoothed_target(y, prior, [0.2, 0.1], num_classes=2)
    assert t.flatten().tolist() == pytest.approx([0.85, 0.15])
    assert smoothed_target(y, prior, [0.2], num_classes=2).flatten().tolist() == pytest.approx([0.9, 0.1])
    assert smoothed_target(y, None, [0.2], num_classes=2).flatten().tolist() == pytest.approx([0.9, 0.1])


def test_bad_input_fails():
    with pytest.raises(ValueError, match="label id 9 out of range"):
        spatial_prior(np.full((4, 4), 9), num_classes=9)
    with pytest.raises(ValueError, match="unknown label smoothing prior"):
        label_smoothing_prior(np.zeros((4, 4, 4), int), 0, "st")
    with pytest.raises(ValueError, match="season 4 out of range"):
        label_smoothing_prior(np.zeros((4, 4, 4), int), 4)
    with pytest.raises(ValueError, match="prior shape"):
        smoothed_target(torch.zeros(1, 4, 4, dtype=torch.long), torch.zeros(1, 9, 5, 5), [0.1])
    with pytest.raises(ValueError, match="one or two smoothing factors"):
        smoothed_target(torch.zeros(1, 4, 4, dtype=torch.long), torch.zeros(1, 9, 4, 4), [0.1, 0.1, 0.1])
