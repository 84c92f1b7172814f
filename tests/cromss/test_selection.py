import math

import pytest
import torch

from eolabels.cromss.selection import (
    SelectionConfig,
    classwise_label_weights,
    cross_modal_enhancement,
    cross_modal_selection,
    entity_confidence,
    entity_weights,
    label_confidence,
)

SEL_EPOCHS = [0, 1, 10, 40, 79, 80, 81, 150]


@pytest.fixture(scope="module")
def sel(cases):
    return {k: torch.from_numpy(cases[f"sel/{k}"]) for k in ("logits_s1", "logits_s2", "y")}


# ---------------------------------------------------------------- golden cases


@pytest.mark.parametrize("kind", ["ce", "gini"])
def test_entity_confidence_matches_reference(sel, golden, kind):
    m1 = entity_confidence(sel["logits_s1"], kind)
    m2 = entity_confidence(sel["logits_s2"], kind)
    golden(f"sel/pred_conf_{kind}_1", m1)
    golden(f"sel/pred_conf_{kind}_2", m2)
    golden(f"sel/pred_conf_{kind}_enh_1", cross_modal_enhancement(m1, m2))
    golden(f"sel/pred_conf_{kind}_enh_2", cross_modal_enhancement(m2, m1))


def test_label_confidence_matches_reference(sel, golden):
    m1 = label_confidence(sel["logits_s1"], sel["y"])
    m2 = label_confidence(sel["logits_s2"], sel["y"])
    golden("sel/lbl_conf_1", m1)
    golden("sel/lbl_conf_2", m2)
    golden("sel/lbl_conf_enh_1", cross_modal_enhancement(m1, m2))
    golden("sel/lbl_conf_enh_2", cross_modal_enhancement(m2, m1))


def test_golden_labels_exercise_the_empty_class_quirk(sel, cases):
    assert int((sel["y"] == 8).sum()) == 1
    assert cases["sel/epochs"].tolist() == SEL_EPOCHS


@pytest.mark.parametrize("epoch", SEL_EPOCHS)
def test_selection_masks_match_reference(sel, golden, epoch):
    w = cross_modal_selection(sel["logits_s1"], sel["logits_s2"], sel["y"], epoch, SelectionConfig())
    for d in (0, 1):
        golden(f"sel/e{epoch}/lbl_mask_classwise_{d + 1}", w.segmentation[d])
        golden(f"sel/e{epoch}/pred_mask_{d + 1}", w.entity[d])
        assert w.segmentation[d].dtype == torch.float32


@pytest.mark.parametrize("epoch", [0, 40])
def test_linear_ramp_masks_match_reference(sel, golden, epoch):
    w = cross_modal_selection(
        sel["logits_s1"], sel["logits_s2"], sel["y"], epoch, SelectionConfig(ramp="linear")
    )
    golden(f"sel/linear_e{epoch}/lbl_mask_classwise_2", w.segmentation[1])
    assert w.segmentation[1].is_floating_point()  # int64 in the reference at r == 1


def test_fix_empty_class_flag_changes_only_that_class(sel):
    y = sel["y"]
    base = cross_modal_selection(sel["logits_s1"], sel["logits_s2"], y, 40, SelectionConfig())
    fixed = cross_modal_selection(
        sel["logits_s1"], sel["logits_s2"], y, 40, SelectionConfig(zero_k_weight=1.0)
    )
    rare = y == 8
    assert torch.all(base.segmentation[0][rare] == 0)
    assert torch.all(fixed.segmentation[0][rare] == 1)
    assert torch.equal(base.segmentation[0][~rare], fixed.segmentation[0][~rare])


# ---------------------------------------------------------------- worked by hand


def test_entropy_confidence_by_hand():
    uniform = torch.zeros(1, 4, 1, 1)
    assert entity_confidence(uniform, "ce").item() == pytest.approx(0.0, abs=1e-6)
    # p = (1/2, 1/2, 0, 0) exactly: H = log 2, 0·log 0 counts as 0, m = 1 − log2/log4 = 1/2
    half = torch.tensor([0.0, 0.0, -math.inf, -math.inf]).view(1, 4, 1, 1)
    assert entity_confidence(half, "ce").item() == pytest.approx(0.5)
    sure = torch.tensor([0.0, -math.inf, -math.inf, -math.inf]).view(1, 4, 1, 1)
    assert entity_confidence(sure, "ce").item() == 1.0


def test_gini_confidence_by_hand():
    assert entity_confidence(torch.zeros(1, 4, 1, 1), "gini").item() == pytest.approx(0.25)
    half = torch.tensor([0.0, 0.0, -math.inf, -math.inf]).view(1, 4, 1, 1)
    assert entity_confidence(half, "gini").item() == pytest.approx(0.5)


def test_label_confidence_two_pixels():
    # pixel 0: p = (0.8, 0.2), label 0; pixel 1: same p, label 1
    logits = torch.log(torch.tensor([[0.8, 0.8], [0.2, 0.2]])).view(1, 2, 1, 2)
    y = torch.tensor([[[0, 1]]])
    assert label_confidence(logits, y).flatten().tolist() == pytest.approx([0.8, 0.2])


def test_cross_modal_enhancement_by_hand():
    m = torch.tensor([0.5, 0.5, 0.8])
    other = torch.tensor([1.0, 0.0, 0.5])
    assert cross_modal_enhancement(m, other).tolist() == pytest.approx([0.5, 0.25, 0.6])


def test_classwise_thresholding_by_hand():
    # class 0: confidences 0.9, 0.6, 0.3, 0.0 → k = floor(4·0.5) = 2, τ = 0.6
    # class 1: one pixel → k = floor(0.5) = 0 → weight 0 (reference quirk) or zero_k_weight
    # class 2: two pixels with confidence 0 → k = 1, τ = 0 → weight 1
    conf = torch.tensor([[[0.9, 0.6, 0.3, 0.0, 0.8, 0.0, 0.0]]])
    y = torch.tensor([[[0, 0, 0, 0, 1, 2, 2]]])
    w = classwise_label_weights(conf, y, 0.5, num_classes=3)
    assert w.flatten().tolist() == pytest.approx([1.0, 1.0, 0.5, 0.0, 0.0, 1.0, 1.0])
    w_fixed = classwise_label_weights(conf, y, 0.5, num_classes=3, zero_k_weight=1.0)
    assert w_fixed.flatten()[4].item() == 1.0


def test_classwise_thresholding_special_ratios():
    conf = torch.tensor([[[0.9, 0.6]]])
    y = torch.tensor([[[0, 1]]])
    ones = classwise_label_weights(conf, y, 1.0, num_classes=2)
    assert ones.dtype == torch.float32 and ones.flatten().tolist() == [1.0, 1.0]
    assert torch.equal(classwise_label_weights(conf, y, 0.0, num_classes=2), conf)


def test_entity_weights_by_hand():
    m = torch.tensor([0.4, 1.0])
    assert entity_weights(m, 0.25).tolist() == pytest.approx([0.85, 1.0])
    assert entity_weights(m, 1.0).tolist() == pytest.approx([0.4, 1.0])


# ---------------------------------------------------------------- bad input


def test_label_out_of_range_is_named():
    logits = torch.zeros(1, 3, 2, 2)
    y = torch.tensor([[[0, 1], [2, 3]]])
    with pytest.raises(ValueError, match="label id 3 out of range 0..2"):
        label_confidence(logits, y)
    with pytest.raises(ValueError, match="out of range"):
        classwise_label_weights(torch.zeros(1, 2, 2), y, 0.5, num_classes=3)


def test_shape_mismatch_between_modalities_fails():
    with pytest.raises(ValueError, match="differ in shape"):
        cross_modal_selection(
            torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 8, 8), torch.zeros(1, 4, 4, dtype=torch.long),
            0, SelectionConfig(),
        )
    with pytest.raises(ValueError, match="does not match logits"):
        label_confidence(torch.zeros(1, 3, 4, 4), torch.zeros(1, 4, 5, dtype=torch.long))


def test_unknown_confidence_type_fails():
    with pytest.raises(ValueError, match="entity confidence type"):
        entity_confidence(torch.zeros(1, 3, 1, 1), "margin")


@pytest.mark.parametrize("ratio", [0.3, 0.5, 0.85675, 0.99663])
def test_sorted_thresholds_equal_a_per_class_top_k(ratio):
    """The one-sort implementation against the reference's masked top-k per class, with ties,
    zero confidences, an absent class and a one-pixel class (k_c = 0)."""
    g = torch.Generator().manual_seed(int(ratio * 1e5))
    conf = (torch.rand(3, 17, 19, generator=g) * 4).round() / 4  # many ties, some zeros
    labels = torch.randint(0, 7, conf.shape, generator=g)
    labels[0, 0, 0] = 8  # class 8 has one pixel, class 7 none
    expected = torch.zeros_like(conf)
    for c in range(9):
        in_class = labels == c
        n_c = int(in_class.sum())
        k_c = int(n_c * ratio)
        if n_c == 0 or k_c == 0:
            continue
        tau = torch.topk(conf[in_class], k_c).values[-1]
        expected[in_class] = (conf[in_class] / tau).clamp(0, 1) if tau > 0 else 1.0
    assert torch.equal(classwise_label_weights(conf, labels, ratio, 9), expected)
