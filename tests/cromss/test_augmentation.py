import numpy as np
import pytest
import torch

from eolabels.cromss.augmentation import augment_jointly, crop, flip, rotate
from eolabels.cromss.normalization import s2_band_indices
from eolabels.cromss.pretrain_sample import pretrain_sample


def _tile(size=6, channels=2):
    image = np.arange(channels * size * size, dtype=np.float32).reshape(channels, size, size)
    label = np.arange(size * size).reshape(size, size) % 9
    return image, label


def test_flip_codes_by_hand():
    image = np.array([[[1, 2], [3, 4]]], dtype=np.float32)
    label = np.array([[1, 2], [3, 4]])
    assert flip(image, label, "horizontal")[1].tolist() == [[2, 1], [4, 3]]
    assert flip(image, label, "vertical")[1].tolist() == [[3, 4], [1, 2]]
    both_image, both_label = flip(image, label, "both")
    assert both_label.tolist() == [[4, 3], [2, 1]] and both_image[0].tolist() == [[4, 3], [2, 1]]


def test_crop_keeps_image_and_label_aligned():
    image, label = _tile()
    c_image, c_label = crop(image, label, 1, 2, 3)
    assert c_image.shape == (2, 3, 3) and np.array_equal(c_label, label[1:4, 2:5])
    assert np.array_equal(c_image[1], image[1, 1:4, 2:5])


def test_quarter_turn_is_exact_joint_and_counter_clockwise():
    # positive angles turn counter-clockwise, as OpenCV's (and so albumentations') do
    image, label = _tile()
    r_image, r_label = rotate(image, label, 90.0)
    assert np.array_equal(r_label, np.rot90(label))
    np.testing.assert_allclose(r_image, np.rot90(image, 1, axes=(1, 2)), atol=1e-4)


def test_small_rotation_keeps_label_ids_and_mirrors_borders():
    image, label = _tile(size=16)
    r_image, r_label = rotate(image, label, 17.0)
    assert set(np.unique(r_label)) <= set(np.unique(label))  # nearest: no blended ids
    assert r_image.dtype == np.float32 and r_image.shape == image.shape
    assert r_image.min() >= image.min() - 1e-3 and r_image.max() <= image.max() + 1e-3  # no fill value


def test_augment_jointly_is_seeded_and_aligned():
    image, label = _tile(size=12)
    image = np.concatenate([image, label[None].astype(np.float32)])  # a channel that copies the label
    a = augment_jointly(image, label, np.random.default_rng(5), crop_size=8, rotate_p=0.0)
    b = augment_jointly(image, label, np.random.default_rng(5), crop_size=8, rotate_p=0.0)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert a[0].shape == (3, 8, 8) and np.array_equal(a[0][-1], a[1].astype(np.float32))


def test_pretrain_sample_matches_reference(cases, golden):
    s1, s2 = cases["ds/ssl4eo/raw_s1_1"], cases["ds/ssl4eo/raw_s2_1"]
    labels = cases["ds/ssl4eo/raw_labels_1"]
    for n_bands in (13, 9):
        for kind in ("ts", "t", "s"):
            sample = pretrain_sample(s1, s2, labels, 1, s2_band_indices(n_bands), kind)
            key = f"ds/ssl4eo/{kind}_b{n_bands}"
            golden(f"{key}/img", torch.cat([sample["s1"], sample["s2"]]))
            golden(f"{key}/smooth_prior", sample["prior"])
            assert torch.equal(sample["label"], torch.from_numpy(cases[f"{key}/ns"]))


def test_augmented_sample_keeps_prior_with_label(cases):
    labels = cases["ds/ssl4eo/raw_labels_1"]
    sample = pretrain_sample(cases["ds/ssl4eo/raw_s1_1"], cases["ds/ssl4eo/raw_s2_1"], labels, 1,
                             s2_band_indices(13), "s", rng=np.random.default_rng(0), crop_size=32)
    assert sample["s1"].shape == (2, 32, 32) and sample["s2"].shape == (13, 32, 32)
    assert sample["prior"].shape == (9, 32, 32) and sample["label"].dtype == torch.int64
    # the spatial prior peaks at the pixel's own class almost everywhere: crop/flip moved both
    agree = (sample["prior"].argmax(0) == sample["label"]).float().mean()
    assert agree > 0.5


def test_bad_locations_fail():
    s1 = np.zeros((4, 2, 8, 8), np.uint8)
    s2 = np.zeros((4, 13, 8, 8), np.uint8)
    with pytest.raises(ValueError, match="need 4 seasons"):
        pretrain_sample(s1[:3], s2[:3], np.zeros((3, 8, 8), np.uint8), 0, range(13))
    with pytest.raises(ValueError, match="differ in tile size"):
        pretrain_sample(s1, s2, np.zeros((4, 9, 9), np.uint8), 0, range(13))
    with pytest.raises(ValueError, match="label id 9 out of range"):
        pretrain_sample(s1, s2, np.full((4, 8, 8), 9, np.uint8), 0, range(13))
    with pytest.raises(ValueError, match="crop of 256 does not fit"):
        augment_jointly(np.zeros((1, 8, 8)), np.zeros((8, 8), int), np.random.default_rng(0))
