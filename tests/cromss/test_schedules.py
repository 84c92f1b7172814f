import math

import numpy as np
import pytest

from eolabels.cromss.schedules import cosine_lr, selection_ramp, selection_ratio, sigmoid_rampup


@pytest.mark.parametrize("kind", ["exp", "linear"])
def test_ramp_and_ratio_match_reference(kind, cases, golden):
    epochs = cases[f"sched/{kind}/epochs"]
    golden(f"sched/{kind}/ramp", [selection_ramp(kind, int(e), 80) for e in epochs])
    golden(f"sched/{kind}/ss_ratio", [selection_ratio(int(e), 0.5, 80, kind) for e in epochs])


def test_exp_ramp_by_hand():
    assert selection_ramp("exp", 0, 80) == pytest.approx(math.exp(-5))
    assert selection_ramp("exp", 40, 80) == pytest.approx(math.exp(-5 * 0.25))
    assert selection_ramp("exp", 80, 80) == 1.0
    assert selection_ramp("exp", 200, 80) == 1.0
    assert selection_ratio(40, 0.5, 80, "exp") == pytest.approx(1 - 0.5 * math.exp(-1.25))
    assert selection_ratio(81, 0.5, 80, "exp") == 0.5


def test_linear_ramp_by_hand():
    assert selection_ramp("linear", 20, 80) == 0.25
    assert selection_ratio(20, 0.5, 80, "linear") == pytest.approx(0.875)
    assert selection_ratio(0, 0.5, 80, "linear") == 1.0


def test_zero_length_ramp_is_complete(cases):
    assert sigmoid_rampup(5, 0) == cases["sched/sigmoid_rampup_T0"][0]


def test_none_ramp_is_full_selection_from_epoch_zero(cases):
    # the reference crashes here (golden flag 0); ours defines λ ≡ 1
    assert cases["sched/none_rampup_callable"][0] == 0
    assert selection_ramp("none", 0, 80) == 1.0
    assert selection_ratio(0, 0.5, 80, "none") == 0.5


def test_unknown_ramp_and_bad_ratio_fail():
    with pytest.raises(ValueError, match="unknown selection ramp"):
        selection_ramp("sigmoid", 3, 80)
    with pytest.raises(ValueError, match="selection ratio"):
        selection_ratio(3, 1.5)


def test_cosine_lr_matches_reference(golden):
    golden("ft/cos_lr", np.array([cosine_lr(e) for e in range(50)]))


def test_cosine_lr_by_hand():
    assert cosine_lr(0) == pytest.approx(5e-4)
    assert cosine_lr(20) == pytest.approx(1e-5 + 4.9e-4 / 2)
    assert cosine_lr(40) == 1e-5
    assert cosine_lr(49) == 1e-5
