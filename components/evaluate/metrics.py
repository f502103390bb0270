"""Segmentation metrics from a streaming confusion matrix (numpy only).

Absent-class rule: a class with no pixels in the truth and none in the prediction has an
undefined IoU (0/0). It is reported as NaN and left out of the mean, so a model is
neither rewarded nor punished for classes the evaluation data does not contain.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def update_confusion(
    confusion: np.ndarray, truth: np.ndarray, prediction: np.ndarray, ignore_label: int
) -> np.ndarray:
    """Add one batch to `confusion` (rows: truth, columns: prediction) in place and return it."""
    num_classes = confusion.shape[0]
    truth = truth.reshape(-1).astype(np.int64)
    prediction = prediction.reshape(-1).astype(np.int64)
    keep = truth != ignore_label
    truth, prediction = truth[keep], prediction[keep]
    if truth.size and (truth.max() >= num_classes or truth.min() < 0):
        raise ValueError(f"truth labels outside 0..{num_classes - 1} (ignore {ignore_label})")
    confusion += np.bincount(
        truth * num_classes + prediction, minlength=num_classes * num_classes
    ).reshape(num_classes, num_classes)
    return confusion


@dataclass(frozen=True)
class SegmentationMetrics:
    """Scores derived from one confusion matrix."""

    mean_iou: float
    per_class_iou: tuple[float, ...]  # NaN for classes absent from truth and prediction
    pixel_accuracy: float

    def as_dict(self, class_names: tuple[str, ...]) -> dict[str, float]:
        """Flat metric keys as logged: mean_iou, pixel_accuracy, iou/<class>."""
        flat = {"mean_iou": self.mean_iou, "pixel_accuracy": self.pixel_accuracy}
        for name, iou in zip(class_names, self.per_class_iou, strict=True):
            if not np.isnan(iou):
                flat[f"iou/{name}"] = iou
        return flat


def compute_metrics(confusion: np.ndarray) -> SegmentationMetrics:
    """Mean IoU (absent classes excluded), per-class IoU and pixel accuracy."""
    confusion = confusion.astype(np.float64)
    true_positive = np.diag(confusion)
    union = confusion.sum(axis=0) + confusion.sum(axis=1) - true_positive
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, true_positive / union, np.nan)
    total = confusion.sum()
    present = ~np.isnan(iou)
    return SegmentationMetrics(
        mean_iou=float(iou[present].mean()) if present.any() else float("nan"),
        per_class_iou=tuple(float(v) for v in iou),
        pixel_accuracy=float(true_positive.sum() / total) if total else float("nan"),
    )
