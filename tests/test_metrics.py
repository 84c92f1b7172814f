"""Metrics on hand-made confusion matrices, with every number worked out by hand."""

import numpy as np
import pytest

from eolabels.metrics import SegmentationMetrics, confusion_matrix, metrics_from_confusion, summary_row


def test_confusion_matrix_counts_pairs_and_drops_ignored():
    target = np.array([[0, 0, 1], [1, 2, 255]])
    pred = np.array([[0, 1, 1], [1, 2, 0]])
    m = confusion_matrix(target, pred, num_classes=3)
    # (t,p): (0,0) (0,1) (1,1) (1,1) (2,2); the (255,0) pixel is ignored
    assert m.tolist() == [[1, 1, 0], [0, 2, 0], [0, 0, 1]]


def test_metrics_on_hand_worked_matrix():
    # rows = target, cols = prediction
    m = np.array([[5, 1, 0], [2, 3, 1], [0, 0, 4]])
    s = metrics_from_confusion(m)
    # tp = 5,3,4 ; fp = col - tp = 2,1,1 ; fn = row - tp = 1,3,0
    assert s["OA"] == pytest.approx(12 / 16)
    assert s["iou"] == pytest.approx([5 / 8, 3 / 7, 4 / 5])
    assert s["f1"] == pytest.approx([10 / 13, 6 / 10, 8 / 9])
    assert s["precision"] == pytest.approx([5 / 7, 3 / 4, 4 / 5])
    assert s["recall"] == pytest.approx([5 / 6, 3 / 6, 4 / 4])
    assert s["AA"] == pytest.approx((5 / 6 + 0.5 + 1) / 3)
    assert s["mIoU"] == pytest.approx((5 / 8 + 3 / 7 + 4 / 5) / 3)
    assert s["mF1"] == pytest.approx((10 / 13 + 0.6 + 8 / 9) / 3)


def test_zero_division_convention_of_cromss_spec_8():
    # class 2 absent from targets and never predicted; class 1 absent from targets but predicted
    m = np.array([[3, 1, 0], [0, 0, 0], [0, 0, 0]])
    s = metrics_from_confusion(m, zero_division=1.0)
    assert s["iou"][2] == 1.0 and s["f1"][2] == 1.0  # 0/0 -> 1
    assert s["iou"][1] == 0.0 and s["f1"][1] == 0.0 and s["precision"][1] == 0.0
    assert s["recall"][1] == 1.0  # 0/0 -> 1
    assert s["mIoU"] == pytest.approx((3 / 4 + 0 + 1) / 3)
    s0 = metrics_from_confusion(m, zero_division=0.0)
    assert s0["iou"][2] == 0.0 and s0["mIoU"] == pytest.approx(0.75 / 3)


def test_accumulation_over_batches_equals_one_big_matrix():
    rng = np.random.default_rng(0)
    t = rng.integers(0, 4, size=(6, 16, 16))
    p = rng.integers(0, 4, size=(6, 16, 16))
    acc = SegmentationMetrics(4)
    for i in range(6):
        acc.update(t[i], p[i])
    whole = metrics_from_confusion(confusion_matrix(t, p, 4))
    assert acc.compute()["mIoU"] == pytest.approx(whole["mIoU"])
    assert acc.matrix.sum() == t.size


def test_out_of_range_ids_are_errors_not_silently_dropped():
    with pytest.raises(ValueError, match="prediction holds class id 7"):
        confusion_matrix(np.array([0, 1]), np.array([0, 7]), num_classes=3)
    with pytest.raises(ValueError, match="target holds class id 3"):
        confusion_matrix(np.array([3]), np.array([0]), num_classes=3, ignore_index=None)


def test_torch_tensors_are_accepted():
    torch = pytest.importorskip("torch")
    m = confusion_matrix(torch.tensor([0, 1, 1]), torch.tensor([0, 1, 0]), 2)
    assert m.tolist() == [[1, 0], [1, 1]]


def test_summary_row_names_classes():
    s = metrics_from_confusion(np.eye(2, dtype=int) * 3)
    row = summary_row(s, ["water", "trees"])
    assert row["OA"] == 1.0 and row["IoU_water"] == 1.0 and set(row) >= {"AA", "mIoU", "mF1"}
    with pytest.raises(ValueError):
        summary_row(s, ["only_one"])


def test_average_over_present_classes_skips_classes_absent_from_targets():
    # LSR convention: water absent from a tile is not scored (Chesapeake reference numbers use it)
    m = np.array([[0, 0, 0], [0, 6, 2], [0, 1, 3]])
    s_all = metrics_from_confusion(m, average_over="all")
    s_present = metrics_from_confusion(m, average_over="present")
    assert s_all["mIoU"] == pytest.approx((1 + 6 / 9 + 3 / 6) / 3)
    assert s_present["mIoU"] == pytest.approx((6 / 9 + 3 / 6) / 2)
    assert s_present["AA"] == pytest.approx((6 / 8 + 3 / 4) / 2)
    assert s_present["OA"] == s_all["OA"] == pytest.approx(9 / 12)
    with pytest.raises(ValueError, match="average_over"):
        metrics_from_confusion(m, average_over="some")
