"""Streaming confusion matrix vs keras.metrics.MeanIoU: throughput and agreement.

Run: .venv/bin/python tests/benchmarks/bench_metrics.py [--batches 8 --size 512 --classes 21]
Both consume the same random uint8 truth (with ~5% ignore pixels, MeanIoU's `ignore_class`)
and predictions, batch by batch; only the updates are timed, after an untimed warm-up.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from components.evaluate.metrics import compute_metrics, update_confusion

IGNORE = 255


def make_batches(count: int, batch: int, size: int, classes: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    batches = []
    for _ in range(count):
        truth = rng.integers(0, classes, size=(batch, size, size), dtype=np.uint8)
        truth[rng.random(truth.shape) < 0.05] = IGNORE
        prediction = rng.integers(0, classes, size=(batch, size, size), dtype=np.uint8)
        batches.append((truth, prediction))
    return batches


def bench_numpy(batches, classes: int) -> tuple[float, float]:
    confusion = np.zeros((classes, classes), dtype=np.int64)
    update_confusion(confusion.copy(), *batches[0], IGNORE)  # warm-up
    start = time.perf_counter()
    for truth, prediction in batches:
        update_confusion(confusion, truth, prediction, IGNORE)
    return time.perf_counter() - start, compute_metrics(confusion).mean_iou


def bench_keras(batches, classes: int) -> tuple[float, float, float]:
    """Seconds, MeanIoU's own result (float32 inside), mean IoU of its matrix in float64."""
    import keras
    import tensorflow as tf

    def fresh():
        return keras.metrics.MeanIoU(num_classes=classes, ignore_class=IGNORE, dtype="int64")

    fresh().update_state(*(tf.constant(a) for a in batches[0]))  # warm-up (tracing)
    metric = fresh()
    tensors = [(tf.constant(t), tf.constant(p)) for t, p in batches]
    start = time.perf_counter()
    for truth, prediction in tensors:
        metric.update_state(truth, prediction)
    elapsed = time.perf_counter() - start
    matrix_iou = compute_metrics(np.asarray(metric.total_cm.numpy())).mean_iou
    return elapsed, float(metric.result().numpy()), matrix_iou


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--classes", type=int, default=21)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    batches = make_batches(args.batches, args.batch_size, args.size, args.classes)
    mpixels = args.batches * args.batch_size * args.size * args.size / 1e6
    numpy_s, numpy_iou = bench_numpy(batches, args.classes)
    keras_s, keras_iou, keras_matrix_iou = bench_keras(batches, args.classes)
    print(f"pixels: {mpixels:.1f} M in {args.batches} batches, {args.classes} classes")
    print(f"streaming confusion matrix: {mpixels / numpy_s:8.1f} Mpixel/s")
    print(f"keras.metrics.MeanIoU:      {mpixels / keras_s:8.1f} Mpixel/s")
    print(f"speed-up: {keras_s / numpy_s:.1f}x (target >= 5x)")
    print(f"mean IoU: {numpy_iou:.12f} vs MeanIoU.result() {keras_iou:.12f}")
    # MeanIoU.result() divides in float32 (keras casts), so it can differ by ~1e-9 on its own;
    # the same formula on MeanIoU's accumulated matrix shows whether the counts agree.
    difference = abs(numpy_iou - keras_matrix_iou)
    print(f"|difference| on MeanIoU's matrix, float64: {difference:.2e} (target <= 1e-9)")
    print(f"|difference| to MeanIoU.result() (float32): {abs(numpy_iou - keras_iou):.2e}")


if __name__ == "__main__":
    main()
