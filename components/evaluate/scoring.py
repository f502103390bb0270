"""Stream an eval split through a SavedModel: confusion matrix, per-image scores, samples."""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass, field

import numpy as np

from components.common.data.dataset import DatasetInfo
from components.evaluate.metrics import compute_metrics, update_confusion


@dataclass(frozen=True)
class ImageScore:
    source_id: str
    mean_iou: float
    pixel_accuracy: float
    labelled_pixels: int


@dataclass(frozen=True)
class Sample:
    """One image with its truth and prediction, kept for the report."""

    score: ImageScore
    image: np.ndarray  # uint8 [H, W, 3]
    truth: np.ndarray  # uint8 [H, W], ignore label kept
    prediction: np.ndarray  # uint8 [H, W]


@dataclass
class ModelScores:
    confusion: np.ndarray
    images: list[ImageScore] = field(default_factory=list)
    best: list[Sample] = field(default_factory=list)  # highest mean IoU first
    worst: list[Sample] = field(default_factory=list)  # lowest mean IoU first


class _Extremes:
    """The k best and k worst samples seen so far, in bounded memory."""

    def __init__(self, k: int) -> None:
        self.k = k
        self._order = itertools.count()  # tie-breaker: arrays are not comparable
        self._best: list = []  # min-heap on IoU: its root is the weakest of the best
        self._worst: list = []  # min-heap on -IoU: its root is the strongest of the worst

    def offer(self, sample: Sample) -> None:
        if self.k <= 0 or np.isnan(sample.score.mean_iou):
            return
        iou, order = sample.score.mean_iou, next(self._order)
        for heap, key in ((self._best, iou), (self._worst, -iou)):
            if len(heap) < self.k:
                heapq.heappush(heap, (key, order, sample))
            elif key > heap[0][0]:
                heapq.heapreplace(heap, (key, order, sample))

    def best(self) -> list[Sample]:
        return [s for _, _, s in sorted(self._best, key=lambda e: (-e[0], e[1]))]

    def worst(self) -> list[Sample]:
        return [s for _, _, s in sorted(self._worst, key=lambda e: (-e[0], e[1]))]


def _read_split(pattern: str, batch_size: int):
    """Batches of (uint8 images, uint8 masks [N,H,W], source ids) in file order."""
    import tensorflow as tf

    from components.common.data.schema import decode_example

    files = sorted(tf.io.gfile.glob(pattern))
    if not files:
        raise FileNotFoundError(f"no TFRecord shards match {pattern}")
    dataset = tf.data.TFRecordDataset(files).map(
        decode_example, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    )
    for batch in dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE):
        ids = [s.decode("utf-8") for s in batch["source_id"].numpy()]
        yield batch["image"], batch["mask"].numpy()[..., 0], ids


def score_model(
    export_dir: str,
    dataset_dir: str,
    split: str,
    info: DatasetInfo,
    samples: int = 3,
    batch_size: int = 16,
) -> ModelScores:
    """Stream `split` through the model in `export_dir`, at the label's own resolution."""
    from components.common.saved_model import load_segmenter

    segment = load_segmenter(export_dir)
    num_classes = info.num_classes
    scores = ModelScores(np.zeros((num_classes, num_classes), dtype=np.int64))
    extremes = _Extremes(samples)
    pattern = info.shard_pattern(dataset_dir, split)
    for images, masks, ids in _read_split(pattern, batch_size):
        predicted = segment(images).numpy()
        update_confusion(scores.confusion, masks, predicted, info.ignore_label)
        for index, source_id in enumerate(ids):
            single = np.zeros_like(scores.confusion)
            update_confusion(single, masks[index], predicted[index], info.ignore_label)
            metrics = compute_metrics(single)
            score = ImageScore(
                source_id, metrics.mean_iou, metrics.pixel_accuracy, int(single.sum())
            )
            scores.images.append(score)
            extremes.offer(Sample(score, images[index].numpy(), masks[index], predicted[index]))
    if not scores.confusion.any():
        raise ValueError(f"split {split!r} of {dataset_dir} has no labelled pixels to evaluate on")
    scores.best, scores.worst = extremes.best(), extremes.worst()
    return scores
