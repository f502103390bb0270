"""Segmentation metrics from a streaming confusion matrix (numpy only).

Absent-class rule: a score whose denominator is zero is undefined and reported as NaN,
then left out of the mean, so a model is neither rewarded nor punished for classes the
evaluation data does not contain:

- IoU and F1 (Dice) of class c are NaN when c is in neither the truth nor the prediction;
  a class only predicted (a false positive everywhere) scores 0 and counts in the mean.
- Class accuracy (recall) of c is NaN when c is not in the truth.
- Frequency-weighted IoU weighs each IoU by the class's share of truth pixels, so classes
  absent from the truth weigh nothing.
- With no labelled pixel at all, every score is NaN (and the gate refuses NaN).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def update_confusion(
    confusion: np.ndarray, truth: np.ndarray, prediction: np.ndarray, ignore_label: int
) -> np.ndarray:
    """Add one batch to `confusion` (rows: truth, columns: prediction) in place and return it."""
    num_classes = confusion.shape[0]
    truth = np.asarray(truth).reshape(-1)
    prediction = np.asarray(prediction).reshape(-1)
    keep = truth != ignore_label
    if not keep.all():
        truth, prediction = truth[keep], prediction[keep]
    if truth.size == 0:
        return confusion
    # One range check per batch; the cast to a 32-bit index halves memory traffic vs int64.
    if int(truth.max()) >= num_classes or int(truth.min()) < 0:
        raise ValueError(f"truth labels outside 0..{num_classes - 1} (ignore {ignore_label})")
    if int(prediction.max()) >= num_classes or int(prediction.min()) < 0:
        raise ValueError(f"predicted labels outside 0..{num_classes - 1}")
    index = truth.astype(np.int32) * num_classes + prediction.astype(np.int32)
    confusion += np.bincount(index, minlength=num_classes * num_classes).reshape(
        num_classes, num_classes
    )
    return confusion


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(
            denominator > 0, numerator / np.where(denominator > 0, denominator, 1), np.nan
        )


def _nanmean(values: np.ndarray) -> float:
    present = ~np.isnan(values)
    return float(values[present].mean()) if present.any() else float("nan")


@dataclass(frozen=True)
class SegmentationMetrics:
    """Scores derived from one confusion matrix (NaN per the module's absent-class rule)."""

    mean_iou: float
    per_class_iou: tuple[float, ...]
    pixel_accuracy: float
    mean_class_accuracy: float = float("nan")
    frequency_weighted_iou: float = float("nan")
    per_class_accuracy: tuple[float, ...] = ()
    per_class_f1: tuple[float, ...] = ()  # F1 equals Dice for a single label per pixel
    mean_f1: float = float("nan")
    truth_pixels: tuple[int, ...] = ()  # labelled pixels per class (confusion row sums)

    def as_dict(self, class_names: tuple[str, ...]) -> dict[str, float]:
        """Flat metric keys as logged: mean_iou, pixel_accuracy, iou/<class>, f1/<class>, ..."""
        flat = {
            "mean_iou": self.mean_iou,
            "pixel_accuracy": self.pixel_accuracy,
            "mean_class_accuracy": self.mean_class_accuracy,
            "frequency_weighted_iou": self.frequency_weighted_iou,
            "mean_f1": self.mean_f1,
        }
        flat = {k: v for k, v in flat.items() if not np.isnan(v)}
        per_class = (
            ("iou", self.per_class_iou),
            ("f1", self.per_class_f1),
            ("accuracy", self.per_class_accuracy),
        )
        for prefix, values in per_class:
            for name, value in zip(class_names, values, strict=False):
                if not np.isnan(value):
                    flat[f"{prefix}/{name}"] = value
        return flat


def compute_metrics(confusion: np.ndarray) -> SegmentationMetrics:
    """Every score of one confusion matrix, absent classes handled per the module docstring."""
    confusion = confusion.astype(np.float64)
    true_positive = np.diag(confusion)
    truth_count = confusion.sum(axis=1)
    predicted_count = confusion.sum(axis=0)
    iou = _ratio(true_positive, truth_count + predicted_count - true_positive)
    f1 = _ratio(2 * true_positive, truth_count + predicted_count)
    recall = _ratio(true_positive, truth_count)
    total = confusion.sum()
    weighted = float(np.nansum(truth_count / total * iou)) if total else float("nan")
    return SegmentationMetrics(
        mean_iou=_nanmean(iou),
        per_class_iou=tuple(float(v) for v in iou),
        pixel_accuracy=float(true_positive.sum() / total) if total else float("nan"),
        mean_class_accuracy=_nanmean(recall),
        frequency_weighted_iou=weighted,
        per_class_accuracy=tuple(float(v) for v in recall),
        per_class_f1=tuple(float(v) for v in f1),
        mean_f1=_nanmean(f1),
        truth_pixels=tuple(int(v) for v in truth_count),
    )
