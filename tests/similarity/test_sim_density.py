"""Two-pass soft counts with a stored accumulator (spec §2.2, §5.0 E3)."""

from __future__ import annotations

import pytest
import torch
from similarity_nets import PlainUNet

from eolabels.similarity.density import SoftDensityAccumulator, accumulate_reference, score_patches
from eolabels.similarity.jacobian import JacobianConfig, network_fingerprint, per_sample_jacobians
from eolabels.similarity.kernel import feature_map, similarity_matrix, soft_count

CONFIG = JacobianConfig()


@pytest.fixture
def patches() -> torch.Tensor:
    torch.manual_seed(10)
    x = torch.randn(10, 3, 8, 8, dtype=torch.float64)
    x[3:6] = x[0] + 0.05 * torch.randn(3, 3, 8, 8, dtype=torch.float64)  # a tight group
    return x


def test_two_pass_equals_row_sums_of_the_full_matrix(plain_unet, patches):
    labels = torch.tensor([0, 1, 2, 0, 0, 255, 1, 3, 3, 2])
    acc = accumulate_reference(plain_unet, patches, CONFIG, labels, num_classes=4, batch_size=4)
    assert acc.count == 10
    soft, per_class = score_patches(
        acc, plain_unet, patches, CONFIG, batch_size=3, with_classes=True
    )
    sim = similarity_matrix(feature_map(per_sample_jacobians(plain_unet, patches, CONFIG))[0])
    torch.testing.assert_close(soft, soft_count(sim))
    # class sums: label-c columns of the matrix; the unlabelled sample is in S only
    for c in range(4):
        torch.testing.assert_close(per_class[:, c], sim[:, labels == c].sum(1))
    torch.testing.assert_close(per_class.sum(1) + sim[:, 5], soft)
    jac = per_sample_jacobians(plain_unet, patches, CONFIG)
    unnormalised = acc.unnormalised_soft_count(jac, acc.fingerprint)
    torch.testing.assert_close(unnormalised, torch.einsum("iam,jam->i", jac, jac) / jac.shape[1])
    excluded, _ = score_patches(acc, plain_unet, patches, CONFIG, exclude_self=True)
    torch.testing.assert_close(excluded, soft - 1)
    assert soft[3:6].min() > soft[[1, 2, 6, 7, 8, 9]].max()  # the group sees each other


def test_new_patch_scored_with_one_jacobian_matches_the_matrix(plain_unet, patches):
    acc = accumulate_reference(plain_unet, patches[:7], CONFIG)
    soft, per_class = score_patches(acc, plain_unet, patches[7:], CONFIG)
    assert per_class is None
    features = feature_map(per_sample_jacobians(plain_unet, patches, CONFIG))[0]
    torch.testing.assert_close(soft, (features[7:] @ features[:7].T).sum(1))


def test_accumulator_rejects_another_network_or_band_count(plain_unet, patches, tmp_path):
    acc = accumulate_reference(plain_unet, patches, CONFIG)
    torch.manual_seed(99)
    other = PlainUNet().double()
    with pytest.raises(ValueError, match="network weights"):
        score_patches(acc, other, patches, CONFIG)
    four_bands = PlainUNet(in_channels=4).double()
    with pytest.raises(ValueError, match="band count: 3 vs 4"):
        score_patches(acc, four_bands, torch.zeros(2, 4, 8, 8, dtype=torch.float64), CONFIG)
    with pytest.raises(ValueError, match="subset"):
        score_patches(acc, plain_unet, patches, JacobianConfig(subset="decoder"))
    with pytest.raises(ValueError, match="sketch_dim"):
        score_patches(acc, plain_unet, patches, JacobianConfig(sketch_dim=32))
    # the check also survives a save/load round trip
    path = tmp_path / "s_train.pt"
    acc.save(path)
    with pytest.raises(ValueError, match="network weights"):
        score_patches(SoftDensityAccumulator.load(path), other, patches, CONFIG)


def test_save_load_round_trip(plain_unet, patches, tmp_path):
    acc = accumulate_reference(plain_unet, patches, CONFIG, torch.arange(10) % 4, num_classes=4)
    path = tmp_path / "s_train.pt"
    acc.save(path)
    assert not (tmp_path / "s_train.pt.tmp").exists()
    loaded = SoftDensityAccumulator.load(path)
    assert loaded.fingerprint == acc.fingerprint and loaded.count == 10
    ours = score_patches(acc, plain_unet, patches, CONFIG, with_classes=True)
    theirs = score_patches(loaded, plain_unet, patches, CONFIG, with_classes=True)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=0)
    (tmp_path / "bad.pt").write_text("not a tensor file")
    with pytest.raises(ValueError, match="bad.pt"):
        SoftDensityAccumulator.load(tmp_path / "bad.pt")


def test_streaming_accumulation_equals_one_pass(plain_unet, patches):
    whole = accumulate_reference(plain_unet, patches, CONFIG)
    streamed = accumulate_reference(plain_unet, patches[:4], CONFIG)
    accumulate_reference(plain_unet, patches[4:], CONFIG, accumulator=streamed)
    torch.testing.assert_close(streamed.total, whole.total)
    assert streamed.count == 10


def test_label_errors(plain_unet, patches):
    fingerprint = network_fingerprint(plain_unet, CONFIG, 3)
    jac = per_sample_jacobians(plain_unet, patches[:2], CONFIG)
    acc = SoftDensityAccumulator(fingerprint, num_classes=2)
    with pytest.raises(ValueError, match="pass labels"):
        acc.add(jac, fingerprint)
    with pytest.raises(ValueError, match="0..1"):
        acc.add(jac, fingerprint, torch.tensor([0, 2]))
    with pytest.raises(ValueError, match="run pass 1"):
        SoftDensityAccumulator(fingerprint).soft_count(jac, fingerprint)
