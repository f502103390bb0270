"""IoU worked by hand on small confusion matrices, after Model Garden's iou_test.py."""

import math

import numpy as np
import pytest

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
