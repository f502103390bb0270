"""Data drift against the champion's training statistics, and the max_class_shift gate rule."""

from __future__ import annotations

import math

import pytest

from components.common.settings.config import GatePolicy
from components.evaluate.drift import DataDrift, compare_stats
from components.evaluate.gate import decide

NAMES = ["background", "circle", "square", "triangle"]


def _stats(train_pixels, val_pixels, sizes=None, inputs=100, rejected=0, names=NAMES) -> dict:
    """A stats.json as preprocess writes it, with the fields drift reads."""
    empty = {"examples": 0, "class_pixels": [0] * len(names), "image_sizes": {}}
    return {
        "class_names": list(names),
        "num_classes": len(names),
        "inputs": inputs,
        "rejected": rejected,
        "splits": {
            "train": {"examples": 8, "class_pixels": train_pixels, "image_sizes": sizes or {}},
            "val": {"examples": 2, "class_pixels": val_pixels, "image_sizes": {}},
            "test": empty,
        },
    }


def test_class_shares_shift_and_total_variation_worked_by_hand():
    # champion: 600/200/100/100 of 1000 -> 0.6, 0.2, 0.1, 0.1
    champion = _stats([500, 150, 100, 50], [100, 50, 0, 50], {"64x64": 10}, inputs=10)
    # new: 450/200/150/200 of 1000 -> 0.45, 0.2, 0.15, 0.2 ; 2 of 20 inputs rejected
    new = _stats([400, 200, 100, 100], [50, 0, 50, 100], {"64x64": 9, "80x80": 9}, 20, 2)
    drift = compare_stats(new, champion)
    assert drift.available
    assert drift.class_share == pytest.approx((0.45, 0.2, 0.15, 0.2))
    assert drift.champion_class_share == pytest.approx((0.6, 0.2, 0.1, 0.1))
    assert drift.class_shift == pytest.approx(0.15) and drift.shifted_class == "background"
    assert drift.class_tv == pytest.approx((0.15 + 0 + 0.05 + 0.1) / 2)
    assert drift.image_size_tv == pytest.approx(0.5)  # half the images have a new size
    assert drift.reject_rate == pytest.approx(0.1) and drift.champion_reject_rate == 0
    metrics = drift.metrics()
    assert metrics["drift/class_shift"] == pytest.approx(0.15)
    assert metrics["drift/class_share/triangle"] == pytest.approx(0.2)
    assert metrics["drift/champion_class_share/triangle"] == pytest.approx(0.1)


def test_identical_statistics_have_no_drift():
    stats = _stats([10, 20, 30, 40], [1, 2, 3, 4], {"32x32": 10})
    drift = compare_stats(stats, stats)
    assert drift.class_shift == 0 and drift.class_tv == 0 and drift.image_size_tv == 0


def test_other_classes_or_no_pixels_cannot_be_compared():
    other = _stats([1, 1], [1, 1], names=["a", "b"])
    drift = compare_stats(_stats([1, 1, 1, 1], [0, 0, 0, 0]), other)
    assert not drift.available and "cannot be compared" in drift.reason
    empty = compare_stats(_stats([0, 0, 0, 0], [0, 0, 0, 0]), _stats([1, 1, 1, 1], [0] * 4))
    assert not empty.available and "this data set has no labelled pixels" in empty.reason
    broken = compare_stats({"class_names": NAMES}, _stats([1, 1, 1, 1], [0] * 4))
    assert not broken.available and "lacks what drift needs" in broken.reason


SHIFTED = compare_stats(
    _stats([450, 200, 150, 200], [0, 0, 0, 0]), _stats([600, 200, 100, 100], [0, 0, 0, 0])
)


def test_max_class_shift_stops_a_run_whose_label_distribution_moved_too_far():
    decision = decide(0.8, 0.7, GatePolicy(max_class_shift=0.1), drift=SHIFTED)
    assert not decision.passed
    assert "class background is 0.4500 of the labelled pixels, 0.6000 in the champion's" in (
        decision.reason
    )
    assert "shift of 0.1500 (allowed max_class_shift 0.1000)" in decision.reason


def test_max_class_shift_passes_within_the_bound_and_says_so():
    decision = decide(0.8, 0.7, GatePolicy(max_class_shift=0.15), drift=SHIFTED)
    assert decision.passed
    assert "largest class share shift 0.1500 (allowed 0.1500)" in decision.reason


def test_max_class_shift_off_ignores_drift():
    assert decide(0.8, 0.7, GatePolicy(), drift=SHIFTED).passed
    assert decide(0.8, 0.7, GatePolicy(), drift=DataDrift.unavailable("gone")).passed


def test_max_class_shift_fails_closed_when_the_champions_statistics_are_missing():
    policy = GatePolicy(max_class_shift=0.2)
    missing = DataDrift.unavailable("the champion's training statistics cannot be read")
    decision = decide(0.8, 0.7, policy, drift=missing)
    assert not decision.passed
    assert "cannot be measured: the champion's training statistics cannot be read" in (
        decision.reason
    )
    assert not decide(0.8, 0.7, policy, drift=None).passed


def test_max_class_shift_has_nothing_to_compare_without_a_champion():
    decision = decide(0.8, None, GatePolicy(max_class_shift=0.0), drift=None)
    assert decision.passed and "no champion yet" in decision.reason


@pytest.mark.parametrize("value", [1.5, math.nan])
def test_max_class_shift_outside_a_share_is_refused(value):
    with pytest.raises(ValueError, match=r"max_class_shift must be in \[-1, 1\]"):
        GatePolicy(max_class_shift=value)
