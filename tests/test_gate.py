"""The pure gate decision."""

from components.common.settings.config import GatePolicy
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


def _scores(*per_class):
    import numpy as np

    from components.evaluate.metrics import SegmentationMetrics

    return SegmentationMetrics(
        mean_iou=float(np.nanmean(per_class)),
        per_class_iou=tuple(per_class),
        pixel_accuracy=0.9,
        truth_pixels=(100,) * len(per_class),
    )


def test_max_drop_allows_a_small_fall_below_the_champion():
    policy = GatePolicy(min_mean_iou=0.5, max_drop=0.1)
    assert decide(0.7, 0.8, policy).passed  # 0.8 - 0.7 is not exactly 0.1 in floats
    assert "within the allowed drop" in decide(0.7, 0.8, policy).reason
    failed = decide(0.69, 0.8, policy)
    assert not failed.passed and "allowed drop 0.1000" in failed.reason


def test_decide_takes_metrics_objects():
    assert decide(_scores(0.8, 0.8), _scores(0.7, 0.7), POLICY).passed
    assert not decide(_scores(0.6, 0.6), _scores(0.7, 0.7), POLICY).passed


def test_per_class_guard_is_off_by_default():
    # mean rises 0.70 -> 0.75, class b falls 0.6 -> 0.3
    assert decide(_scores(0.9, 0.3, 1.05), _scores(0.8, 0.6, 0.7), POLICY).passed


def test_per_class_guard_names_the_class_that_dropped():
    policy = GatePolicy(min_mean_iou=0.5, max_class_drop=0.2)
    candidate, champion = _scores(0.9, 0.3, 1.0), _scores(0.8, 0.6, 0.7)
    decision = decide(candidate, champion, policy, ("a", "b", "c"))
    assert not decision.passed
    assert "class b" in decision.reason and "0.3000" in decision.reason
    assert decide(candidate, champion, GatePolicy(max_class_drop=0.3), ("a", "b", "c")).passed


def test_per_class_guard_ignores_classes_the_champion_never_scored():
    policy = GatePolicy(min_mean_iou=0.5, max_class_drop=0.0)
    nan = float("nan")
    decision = decide(_scores(0.8, 0.9, 0.7), _scores(0.8, 0.8, nan), policy)
    assert decision.passed
    assert "no class IoU dropped" in decision.reason


def test_class_that_vanishes_from_the_candidate_counts_as_a_drop_to_zero():
    policy = GatePolicy(min_mean_iou=0.0, max_drop=1.0, max_class_drop=0.5)
    assert not decide(_scores(0.9, float("nan")), _scores(0.8, 0.6), policy).passed


def test_max_drop_never_waives_the_floor():
    assert not decide(0.45, 0.5, GatePolicy(min_mean_iou=0.5, max_drop=0.5)).passed


def _confusion_without_class(absent: int, classes: int = 3):
    """A perfect prediction on data where class `absent` has no pixel at all."""
    import numpy as np

    from components.evaluate.metrics import compute_metrics

    confusion = np.diag([50] * classes).astype(np.int64)
    confusion[absent, absent] = 0
    return compute_metrics(confusion)


def test_truth_pixels_per_class_are_the_confusion_rows():
    import numpy as np

    from components.evaluate.metrics import compute_metrics

    confusion = np.array([[5, 1, 0], [2, 7, 0], [0, 0, 0]])  # rows: truth
    assert compute_metrics(confusion).truth_pixels == (6, 9, 0)


def test_a_class_with_no_truth_pixels_fails_the_gate_naming_it():
    scores = _confusion_without_class(2)
    assert scores.mean_iou == 1.0  # the vanished class would otherwise score a perfect model
    decision = decide(scores, None, GatePolicy(min_mean_iou=0.5), ("sky", "road", "car"))
    assert not decision.passed
    assert "class car has no ground-truth pixels in the val split" in decision.reason
    assert "allow_absent_classes=car" in decision.reason


def test_several_absent_classes_are_all_named():
    import numpy as np

    from components.evaluate.metrics import compute_metrics

    scores = compute_metrics(np.diag([50, 0, 0, 50]))
    decision = decide(scores, None, GatePolicy(eval_split="test"), ("a", "b", "c", "d"))
    assert not decision.passed
    assert "classes b, c have no ground-truth pixels in the test split" in decision.reason


def test_allow_absent_classes_by_name_or_any():
    scores = _confusion_without_class(1)
    names = ("sky", "road", "car")
    for allowed in ("road", " car, road ", "*"):
        decision = decide(scores, None, GatePolicy(allow_absent_classes=allowed), names)
        assert decision.passed, (allowed, decision.reason)
        assert "absent from the val split (allowed): road" in decision.reason
    assert not decide(scores, None, GatePolicy(allow_absent_classes="car"), names).passed


def test_scores_without_pixel_counts_fail_closed():
    from components.evaluate.metrics import SegmentationMetrics

    scores = SegmentationMetrics(mean_iou=0.9, per_class_iou=(0.9, 0.9), pixel_accuracy=0.9)
    decision = decide(scores, None, POLICY)
    assert not decision.passed and "no per-class pixel counts" in decision.reason


def test_allow_absent_classes_must_name_classes_of_the_data_set():
    import pytest

    from components.evaluate.gate import check_policy

    check_policy(GatePolicy(allow_absent_classes="car,*"), ("sky", "car"))
    with pytest.raises(ValueError, match="names bus, not classes of this data set"):
        check_policy(GatePolicy(allow_absent_classes="car,bus"), ("sky", "car"))
