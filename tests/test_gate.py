"""The pure gate decision."""

from components.common.config import GatePolicy
from components.evaluate.gate import decide

POLICY = GatePolicy(min_mean_iou=0.5)


def test_passes_above_floor_without_champion():
    decision = decide(0.6, None, POLICY)
    assert decision.passed
    assert "no champion" in decision.reason


def test_fails_below_floor():
    decision = decide(0.49, None, POLICY)
    assert not decision.passed
    assert "below the minimum" in decision.reason


def test_fails_below_champion():
    decision = decide(0.7, 0.71, POLICY)
    assert not decision.passed
    assert "champion" in decision.reason


def test_passes_equal_to_champion():
    assert decide(0.7, 0.7, POLICY).passed


def test_nan_never_passes():
    assert not decide(float("nan"), None, GatePolicy(min_mean_iou=0.0)).passed


def test_floor_applies_even_when_champion_is_worse():
    assert not decide(0.4, 0.3, POLICY).passed
