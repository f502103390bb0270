"""Score the candidate and the current champion on the same shards, then apply the gate."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import mlflow
import numpy as np
from mlflow.tracking import MlflowClient

from components.common.config import GatePolicy
from components.common.dataset import DatasetInfo, read_dataset_info
from components.common.registry import alias_version, download_version
from components.common.tracking import step_run, tracking_uri
from components.evaluate.gate import Decision, decide
from components.evaluate.metrics import SegmentationMetrics, compute_metrics, update_confusion

log = logging.getLogger(__name__)
CHAMPION_ALIAS = "champion"


@dataclass(frozen=True)
class Evaluation:
    candidate: SegmentationMetrics
    champion: SegmentationMetrics | None
    champion_version: str | None
    decision: Decision
    metrics: dict[str, float]  # flat keys, as logged to MLflow and KFP


def confusion_for(export_dir: str, dataset_dir: str, split: str, info: DatasetInfo) -> np.ndarray:
    """Stream `split` through an exported model; returns its confusion matrix."""
    import tensorflow as tf

    from components.train.data import make_dataset
    from components.train.export import load_segmenter

    segment = load_segmenter(export_dir)
    confusion = np.zeros((info.num_classes, info.num_classes), dtype=np.int64)
    for images, masks in make_dataset(info.shard_pattern(dataset_dir, split), 16, training=False):
        predicted = segment(images=tf.cast(images, tf.uint8))["class_ids"].numpy()
        update_confusion(confusion, masks.numpy()[..., 0], predicted, info.ignore_label)
    if not confusion.any():
        raise ValueError(f"split {split!r} of {dataset_dir} has no labelled pixels to evaluate on")
    return confusion


def evaluate(
    dataset_dir: str,
    model_dir: str,
    policy: GatePolicy,
    model_name: str,
    experiment: str = "segpipe",
    pipeline_run_id: str = "manual",
) -> Evaluation:
    """Metrics for the candidate in `model_dir` and for `model_name@champion`, plus the gate."""
    info = read_dataset_info(dataset_dir)
    with step_run("evaluate", experiment, pipeline_run_id):
        candidate = compute_metrics(confusion_for(model_dir, dataset_dir, policy.eval_split, info))
        champion_version = alias_version(MlflowClient(tracking_uri()), model_name, CHAMPION_ALIAS)
        champion = None
        if champion_version is not None:
            champion_dir = download_version(champion_version)
            champion = compute_metrics(
                confusion_for(champion_dir, dataset_dir, policy.eval_split, info)
            )
        decision = decide(candidate.mean_iou, champion and champion.mean_iou, policy)
        metrics = candidate.as_dict(info.class_names)
        if champion is not None:
            metrics.update(
                {f"champion/{k}": v for k, v in champion.as_dict(info.class_names).items()}
            )
        metrics["gate_passed"] = float(decision.passed)
        mlflow.log_metrics(metrics)
        mlflow.log_params({"eval_split": policy.eval_split, "min_mean_iou": policy.min_mean_iou})
        mlflow.set_tags(
            {
                "gate.passed": str(decision.passed).lower(),
                "gate.reason": decision.reason,
                "champion_version": str(champion_version.version) if champion_version else "none",
            }
        )
        log.info("evaluate: %s", decision.reason)
        return Evaluation(
            candidate,
            champion,
            str(champion_version.version) if champion_version else None,
            decision,
            metrics,
        )
