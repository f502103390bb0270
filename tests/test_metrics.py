"""IoU worked by hand on small confusion matrices, after Model Garden's iou_test.py."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from components.evaluate.metrics import compute_metrics, update_confusion


def _confusion(truth, prediction, num_classes, ignore=255):
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    return update_confusion(confusion, np.array(truth), np.array(prediction), ignore)


def test_two_classes_by_hand():
    # truth:      0 0 1 1 ; prediction: 0 1 0 1
    # class 0: tp 1, fp 1, fn 1 -> 1/3 ; class 1: same -> 1/3
    metrics = compute_metrics(_confusion([0, 0, 1, 1], [0, 1, 0, 1], 2))
    assert metrics.per_class_iou == pytest.approx((1 / 3, 1 / 3))
    assert metrics.mean_iou == pytest.approx(1 / 3)
    assert metrics.pixel_accuracy == pytest.approx(0.5)


def test_unequal_classes_by_hand():
    # truth 0 0 0 1, prediction 0 0 1 1
    # class 0: tp 2, fp 0, fn 1 -> 2/3 ; class 1: tp 1, fp 1, fn 0 -> 1/2
    metrics = compute_metrics(_confusion([0, 0, 0, 1], [0, 0, 1, 1], 2))
    assert metrics.per_class_iou == pytest.approx((2 / 3, 1 / 2))
    assert metrics.mean_iou == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert metrics.pixel_accuracy == pytest.approx(3 / 4)


def test_class_absent_from_truth_and_prediction_is_left_out_of_the_mean():
    metrics = compute_metrics(_confusion([0, 0, 1, 1], [0, 0, 1, 0], 3))
    assert math.isnan(metrics.per_class_iou[2])
    # class 0: tp 2, fp 1 -> 2/3 ; class 1: tp 1, fn 1 -> 1/2 ; class 2 absent
    assert metrics.mean_iou == pytest.approx((2 / 3 + 1 / 2) / 2)


def test_class_predicted_but_absent_from_truth_counts_as_zero():
    metrics = compute_metrics(_confusion([0, 0, 0, 0], [0, 0, 0, 2], 3))
    assert metrics.per_class_iou[2] == 0.0
    assert metrics.mean_iou == pytest.approx((3 / 4 + 0.0) / 2)


def test_ignore_label_pixels_are_not_counted():
    confusion = _confusion([0, 255, 1, 255], [0, 1, 1, 0], 2)
    assert confusion.sum() == 2
    assert compute_metrics(confusion).mean_iou == pytest.approx(1.0)


def test_streaming_equals_one_batch():
    rng = np.random.default_rng(1)
    truth = rng.integers(0, 4, size=(6, 8, 8))
    prediction = rng.integers(0, 4, size=(6, 8, 8))
    streamed = np.zeros((4, 4), dtype=np.int64)
    for t, p in zip(truth, prediction, strict=True):
        update_confusion(streamed, t, p, 255)
    np.testing.assert_array_equal(streamed, _confusion(truth, prediction, 4))


def test_label_outside_classes_is_an_error():
    with pytest.raises(ValueError, match="outside"):
        _confusion([0, 5], [0, 0], 2)


def test_predicted_label_outside_classes_is_an_error():
    with pytest.raises(ValueError, match="predicted"):
        _confusion([0, 1], [0, 2], 2)


def test_class_accuracy_f1_and_frequency_weighted_iou_by_hand():
    # truth 0 0 0 1, prediction 0 0 1 1 (as in test_unequal_classes_by_hand)
    # recall: class 0 2/3, class 1 1/1 -> mean (2/3 + 1) / 2
    # F1 = 2tp / (|truth| + |prediction|): class 0 4/5, class 1 2/3
    # frequency-weighted IoU: 3/4 * 2/3 + 1/4 * 1/2
    metrics = compute_metrics(_confusion([0, 0, 0, 1], [0, 0, 1, 1], 2))
    assert metrics.per_class_accuracy == pytest.approx((2 / 3, 1.0))
    assert metrics.mean_class_accuracy == pytest.approx((2 / 3 + 1) / 2)
    assert metrics.per_class_f1 == pytest.approx((4 / 5, 2 / 3))
    assert metrics.mean_f1 == pytest.approx((4 / 5 + 2 / 3) / 2)
    assert metrics.frequency_weighted_iou == pytest.approx(3 / 4 * 2 / 3 + 1 / 4 * 1 / 2)


def test_three_classes_by_hand():
    # Model Garden style: a 3x3 confusion matrix written out, every score derived by hand.
    #            predicted 0  1  2
    # truth 0            [3, 1, 0]
    # truth 1            [0, 2, 2]
    # truth 2            [1, 0, 1]
    confusion = np.array([[3, 1, 0], [0, 2, 2], [1, 0, 1]])
    metrics = compute_metrics(confusion)
    # IoU = tp / (row + col - tp): 3/(4+4-3), 2/(4+3-2), 1/(2+3-1)
    assert metrics.per_class_iou == pytest.approx((3 / 5, 2 / 5, 1 / 4))
    assert metrics.mean_iou == pytest.approx((3 / 5 + 2 / 5 + 1 / 4) / 3)
    assert metrics.pixel_accuracy == pytest.approx(6 / 10)
    assert metrics.per_class_accuracy == pytest.approx((3 / 4, 2 / 4, 1 / 2))
    assert metrics.per_class_f1 == pytest.approx((6 / 8, 4 / 7, 2 / 5))
    assert metrics.frequency_weighted_iou == pytest.approx(0.4 * 3 / 5 + 0.4 * 2 / 5 + 0.2 * 1 / 4)


def test_absent_class_rule_for_every_score():
    # class 2 never occurs; class 1 is predicted once but absent from the truth
    metrics = compute_metrics(_confusion([0, 0, 0, 0], [0, 0, 0, 1], 3))
    assert math.isnan(metrics.per_class_iou[2]) and math.isnan(metrics.per_class_f1[2])
    assert math.isnan(metrics.per_class_accuracy[1]) and math.isnan(metrics.per_class_accuracy[2])
    assert metrics.per_class_iou[1] == 0.0 and metrics.per_class_f1[1] == 0.0
    assert metrics.mean_class_accuracy == pytest.approx(3 / 4)  # class 0 only
    assert metrics.frequency_weighted_iou == pytest.approx(3 / 4)  # class 1 weighs 0
    flat = metrics.as_dict(("a", "b", "c"))
    assert "iou/c" not in flat and "accuracy/b" not in flat and flat["iou/b"] == 0.0


def test_no_labelled_pixels_gives_nan_everywhere():
    metrics = compute_metrics(_confusion([255, 255], [0, 1], 2))
    assert math.isnan(metrics.mean_iou) and math.isnan(metrics.pixel_accuracy)
    assert math.isnan(metrics.frequency_weighted_iou) and math.isnan(metrics.mean_class_accuracy)


labels = st.integers(min_value=1, max_value=6).flatmap(
    lambda n: st.tuples(
        st.just(n),
        st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), min_size=1, max_size=200),
    )
)


@pytest.mark.filterwarnings("ignore:A single label was found")
@settings(max_examples=150, deadline=None)
@given(labels)
def test_agrees_with_scikit_learn(case):
    from sklearn.metrics import balanced_accuracy_score, confusion_matrix, f1_score, jaccard_score

    num_classes, pairs = case
    truth = np.array([t for t, _ in pairs])
    prediction = np.array([p for _, p in pairs])
    every = list(range(num_classes))
    confusion = _confusion(truth, prediction, num_classes)
    np.testing.assert_array_equal(confusion, confusion_matrix(truth, prediction, labels=every))

    metrics = compute_metrics(confusion)
    present = sorted(set(truth) | set(prediction))  # the absent-class rule, in sklearn's terms
    expected_iou = jaccard_score(truth, prediction, labels=present, average=None)
    assert [metrics.per_class_iou[c] for c in present] == pytest.approx(list(expected_iou))
    assert metrics.mean_iou == pytest.approx(float(np.mean(expected_iou)))
    assert all(math.isnan(metrics.per_class_iou[c]) for c in set(every) - set(present))
    expected_f1 = f1_score(truth, prediction, labels=present, average=None)
    assert [metrics.per_class_f1[c] for c in present] == pytest.approx(list(expected_f1))
    if set(prediction) <= set(truth):
        # sklearn warns and differs only on classes predicted but never true
        assert metrics.mean_class_accuracy == pytest.approx(
            balanced_accuracy_score(truth, prediction)
        )
    assert metrics.pixel_accuracy == pytest.approx(float(np.mean(truth == prediction)))
