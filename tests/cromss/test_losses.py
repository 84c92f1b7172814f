import numpy as np
import pytest
import torch

from eolabels.cromss.losses import (
    consistency_loss,
    cromss_loss,
    finetune_loss,
    pixel_cross_entropy,
    soft_dice_loss,
    validation_loss,
    weighted_mean,
)
from eolabels.cromss.selection import SelectionConfig, cross_modal_selection
from eolabels.cromss.smoothing import smoothed_target
from eolabels.metrics import SegmentationMetrics

# reference configurations of the golden loss cases (cromss_cases.json descriptions)
LOSS_CASES = {
    "cromss_ce": ("ce", [0.15, 0.05], True, [0, 40, 80, 120]),
    "cromss_kl": ("kl", [0.15, 0.05], True, [40]),
    "cromss_mse": ("mse", [0.15, 0.05], True, [40]),
    "cromss_nols": ("ce", None, True, [40]),
    "cromss_prioronly": ("ce", [0.1], True, [40]),
    "mm_noss_ls": ("ce", [0.15, 0.05], False, [0]),
    "mm_noss_nols": ("ce", None, False, [0]),
    "mm_noss_kl": ("kl", None, False, [0]),
}
CASE_IDS = [(name, e) for name, (*_, epochs) in LOSS_CASES.items() for e in epochs]


@pytest.fixture(scope="module")
def batch(cases):
    return {k: torch.from_numpy(cases[f"loss/{k}"]) for k in ("logits_s1", "logits_s2", "y", "smooth_prior")}


# ---------------------------------------------------------------- golden cases


@pytest.mark.parametrize("name,epoch", CASE_IDS, ids=[f"{n}-e{e}" for n, e in CASE_IDS])
def test_cromss_loss_matches_reference(batch, golden, name, epoch):
    consistency, factors, select, _ = LOSS_CASES[name]
    l1 = batch["logits_s1"].clone().requires_grad_()
    l2 = batch["logits_s2"].clone().requires_grad_()
    y = batch["y"]
    target = smoothed_target(y, batch["smooth_prior"], factors) if factors else y
    selection = cross_modal_selection(l1, l2, y, epoch, SelectionConfig()) if select else None
    loss = cromss_loss(l1, l2, target, selection, consistency)
    loss.total.backward()
    key = f"loss/{name}/e{epoch}"
    golden(f"{key}/loss", loss.total)
    golden(f"{key}/components", loss.components().double())
    golden(f"{key}/grad_s1", l1.grad)
    golden(f"{key}/grad_s2", l2.grad)


def test_validation_loss_matches_reference(batch, golden):
    golden("loss/val_loss", validation_loss(batch["logits_s1"], batch["logits_s2"], batch["y"]))


@pytest.mark.parametrize("kind", ["ce", "kl", "mse"])
def test_consistency_terms_match_reference(batch, golden, kind):
    l1, l2, y = batch["logits_s1"], batch["logits_s2"], batch["y"]
    sel = cross_modal_selection(l1, l2, y, 100, SelectionConfig())
    c12 = consistency_loss(l1, l2, sel.entity[1], kind)  # the S2 teacher's mask weighs S1's term
    c21 = consistency_loss(l2, l1, sel.entity[0], kind)
    golden(f"loss/con_{kind}_weighted", torch.stack([c12 + c21, c12, c21]).double())
    golden(f"loss/con_{kind}_unweighted", consistency_loss(l1, l2, None, kind) + consistency_loss(l2, l1, None, kind))


def test_dice_matches_reference(cases, golden):
    logits = torch.from_numpy(cases["dice/logits"])
    y = torch.from_numpy(cases["dice/y"])
    golden("dice/hard", soft_dice_loss(logits, y))
    golden("dice/hard_weighted", soft_dice_loss(logits, y, torch.from_numpy(cases["dice/weights"])))
    golden("dice/hard_ignore", soft_dice_loss(logits, torch.from_numpy(cases["dice/y_ignore"]), ignore_index=9))


@pytest.mark.parametrize("dataset", ["dw", "osm", "dfc"])
def test_finetune_loss_and_metrics_match_reference(cases, golden, dataset):
    logits = torch.from_numpy(cases[f"ft/{dataset}/logits"]).requires_grad_()
    y = torch.from_numpy(cases[f"ft/{dataset}/y"])
    ignore = None if dataset == "dfc" else 255  # DFC has no ignore index (§7)
    total, ce, dice = finetune_loss(logits, y, ignore)
    total.backward()
    golden(f"ft/{dataset}/loss", torch.stack([total, ce, dice]).double())
    golden(f"ft/{dataset}/grad", logits.grad)

    metrics = SegmentationMetrics(num_classes=logits.shape[1])
    for target, pred in zip(y, logits.detach().argmax(dim=1)):
        metrics.update(target, pred)
    s = metrics.compute()
    # layout of the reference: per-class values, then the mean over all C classes
    for key, per_class in (("iou", "iou"), ("f1", "f1"), ("precise", "precision"), ("recall", "recall")):
        golden(f"ft/{dataset}/metric_{key}", np.append(s[per_class], s[per_class].mean()))
    golden(f"ft/{dataset}/metric_oa", [s["OA"]])
    assert s["mIoU"] == pytest.approx(cases[f"ft/{dataset}/metric_iou"][-1])
    assert s["AA"] == pytest.approx(cases[f"ft/{dataset}/metric_recall"][-1])


def test_batch_metrics_zero_division_cases_match_reference(cases, golden):
    # class 3 present but never predicted (precision 1), class 4 predicted but absent (recall 1)
    metrics = SegmentationMetrics(num_classes=5, ignore_index=None)
    metrics.update(cases["metrics_bw/target"], cases["metrics_bw/pred"])
    s = metrics.compute()
    for key, per_class in (("iou", "iou"), ("f1", "f1"), ("precise", "precision"), ("recall", "recall")):
        golden(f"metrics_bw/{key}", np.append(s[per_class], s[per_class].mean()).astype(np.float32))
    golden("metrics_bw/oa", np.float32(s["OA"]))


# ---------------------------------------------------------------- worked by hand


def _one_pixel(*logit_values):
    return torch.tensor(logit_values, dtype=torch.float32).view(1, -1, 1, 1)


def test_dice_one_pixel_by_hand():
    # p = (1/2, 1/2), label 0: I_0 = 1/2, K_0 = 3/2, loss_0 = 1/3; class 1 absent counts 0 in the 1/C
    logits = _one_pixel(0.0, 0.0)
    y = torch.zeros(1, 1, 1, dtype=torch.long)
    assert soft_dice_loss(logits, y).item() == pytest.approx(1 / 6)
    # a zero weight empties I and K: score 0/eps = 0, the present class costs 1
    assert soft_dice_loss(logits, y, torch.zeros(1, 1, 1)).item() == pytest.approx(0.5)
    # soft target (1/2, 1/2): both classes present, I_c = 1/4, K_c = 1, loss_c = 1/2
    soft = torch.full((1, 2, 1, 1), 0.5)
    assert soft_dice_loss(logits, soft).item() == pytest.approx(0.5)


def test_dice_ignored_pixel_is_removed():
    logits = torch.tensor([[0.0, 3.0], [0.0, -1.0]]).view(1, 2, 1, 2)
    y = torch.tensor([[[0, 255]]])
    assert soft_dice_loss(logits, y, ignore_index=255).item() == pytest.approx(
        soft_dice_loss(logits[..., :1], y[..., :1]).item()
    )


def test_weighted_cross_entropy_by_hand():
    assert weighted_mean(torch.tensor([1.0, 3.0]), torch.tensor([1.0, 0.0])).item() == 1.0
    assert weighted_mean(torch.tensor([1.0, 3.0]), torch.tensor([1.0, 1.0])).item() == 2.0
    assert weighted_mean(torch.tensor([1.0, 3.0]), torch.zeros(2)).item() == 0.0
    ce = pixel_cross_entropy(_one_pixel(0.0, 0.0), torch.full((1, 2, 1, 1), 0.5))
    assert ce.item() == pytest.approx(np.log(2))


def test_consistency_teacher_is_detached_and_ce_minus_kl_is_entropy():
    student = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(0)).requires_grad_()
    teacher = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(1)).requires_grad_()
    ce = consistency_loss(student, teacher, None, "ce")
    ce.backward()
    assert teacher.grad is None and student.grad is not None
    kl = consistency_loss(student, teacher, None, "kl")
    p = teacher.detach().softmax(1)
    entropy = -(p * p.log()).sum(1).mean()
    assert (ce - kl).item() == pytest.approx(entropy.item(), rel=1e-5)


def test_mse_consistency_and_mask_by_hand():
    # student p = (1/2, 1/2), teacher p ≈ (1, 0): Σ_c (p_s − p_t)² = 1/2 per pixel
    student = torch.zeros(1, 2, 1, 2)
    teacher = torch.tensor([[100.0, 100.0], [0.0, 0.0]]).view(1, 2, 1, 2)
    assert consistency_loss(student, teacher, None, "mse").item() == pytest.approx(0.5)
    mask = torch.tensor([[[1.0, 0.0]]])
    assert consistency_loss(student, teacher, mask, "mse").item() == pytest.approx(0.5)
    assert consistency_loss(student, teacher, torch.zeros(1, 1, 2), "mse").item() == 0.0


def test_total_loss_sums_both_branches_without_half():
    l1, l2 = _one_pixel(0.0, 0.0), _one_pixel(0.0, 0.0)
    y = torch.zeros(1, 1, 1, dtype=torch.long)
    loss = cromss_loss(l1, l2, y, consistency_weight=2.0)
    per_branch = np.log(2) + 1 / 6  # CE + Dice of the one-pixel case
    assert loss.segmentation_s1.item() == pytest.approx(per_branch)
    assert loss.total.item() == pytest.approx(2 * per_branch + 2.0 * 2 * np.log(2))


def test_finetune_loss_ignores_unlabelled_pixels():
    logits = torch.tensor([[0.0, 3.0], [0.0, -1.0]]).view(1, 2, 1, 2)
    total, ce, _ = finetune_loss(logits, torch.tensor([[[0, 255]]]))
    assert ce.item() == pytest.approx(np.log(2))


# ---------------------------------------------------------------- bad input


def test_bad_targets_fail_with_names():
    logits = torch.zeros(1, 3, 2, 2)
    with pytest.raises(ValueError, match="label id 7 out of range 0..2"):
        soft_dice_loss(logits, torch.full((1, 2, 2), 7))
    with pytest.raises(ValueError, match="does not match logits"):
        pixel_cross_entropy(logits, torch.zeros(1, 3, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="differ in shape"):
        cromss_loss(logits, torch.zeros(1, 3, 4, 4), torch.zeros(1, 2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="weights shape"):
        soft_dice_loss(logits, torch.zeros(1, 2, 2, dtype=torch.long), torch.ones(1, 3, 3))
    with pytest.raises(ValueError, match="unknown consistency"):
        consistency_loss(logits, logits, None, "js")
    with pytest.raises(ValueError, match="out of range"):
        finetune_loss(logits, torch.full((1, 2, 2), 254))
