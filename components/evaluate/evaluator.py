"""Score the candidate and the current champion on the same shards, then apply the gate."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass

from components.common import storage, verdict
from components.common.data.dataset import read_dataset_info
from components.common.data.digest import folder_sha256
from components.common.settings.config import DEFAULT_ALIAS, DEFAULT_EXPERIMENT, GatePolicy
from components.common.tracking.runs import check_reachable, step_run, tracking_uri
from components.evaluate.drift import DataDrift, compare_stats
from components.evaluate.gate import Decision, check_policy, decide
from components.evaluate.metrics import SegmentationMetrics, compute_metrics

log = logging.getLogger(__name__)
CHAMPION_ALIAS = DEFAULT_ALIAS
REPORT_FILE = "report.html"
IMAGES_FILE = "per_image_iou.parquet"
DRIFT_FILE = "drift.json"
TRAINING_STATS_ARTIFACT = "dataset/stats.json"  # what train logged: the data a model saw


@dataclass(frozen=True)
class Evaluation:
    candidate: SegmentationMetrics
    champion: SegmentationMetrics | None
    champion_version: str | None
    decision: Decision
    metrics: dict[str, float]  # flat keys, as logged to MLflow and KFP
    report_path: str
    images_path: str
    run_id: str  # the evaluate run in MLflow, which publish checks
    model_sha256: str  # digest of the model folder scored
    class_names: tuple[str, ...] = ()
    confusion: tuple[tuple[int, ...], ...] = ()  # candidate pixels: rows truth, cols predicted
    drift: DataDrift | None = None  # this data against the champion's training data

    def confusion_matrix(self) -> tuple[list[str], list[list[int]]]:
        """(class names, matrix) as KFP's ClassificationMetrics takes them."""
        return list(self.class_names), [list(row) for row in self.confusion]


def evaluate(
    dataset_dir: str,
    model_dir: str,
    policy: GatePolicy,
    model_name: str,
    experiment: str = DEFAULT_EXPERIMENT,
    pipeline_run_id: str = "manual",
    report_path: str | None = None,
    images_path: str | None = None,
    train_run_id: str = "",
    alias: str = CHAMPION_ALIAS,
    snapshot_dir: str | None = None,
) -> Evaluation:
    """Metrics for the candidate in `model_dir` and for `model_name@alias`, plus the gate.

    Writes the HTML report and the per-image Parquet table (to `report_path` and
    `images_path` when given) and logs both to the step's MLflow run under `evaluation/`.
    Tags the run with what it judged (the `verdict` tags: the model folder's digest, its train
    run when given, the champion version compared against), which publish checks.
    Compares the data set's statistics with the champion's training data's (`drift.json`,
    `drift/...` metrics) for the gate's `max_class_shift`; `snapshot_dir` (the snapshot step's
    output) is logged as the run's dataset input.
    """
    import mlflow
    from mlflow.tracking import MlflowClient

    from components.common.tracking.registry import alias_version, download_version
    from components.evaluate.report import render_report, write_image_table
    from components.evaluate.scoring import score_model

    check_reachable(tracking_uri())  # before loading any model: fail in seconds, not minutes
    info = read_dataset_info(dataset_dir)
    check_policy(policy, info.class_names)
    model_sha256 = folder_sha256(model_dir)  # what publish must find again, byte for byte
    outputs = tempfile.mkdtemp(prefix="segpipe-evaluate-")
    with step_run("evaluate", experiment, pipeline_run_id, dataset_dir=dataset_dir) as run:
        if snapshot_dir:
            from components.common.tracking.lineage import log_training_data

            log_training_data(snapshot_dir, context="evaluation")
        scores = score_model(model_dir, dataset_dir, policy.eval_split, info)
        candidate = compute_metrics(scores.confusion)
        champion_version = alias_version(MlflowClient(tracking_uri()), model_name, alias)
        champion_scores = champion = drift = None
        if champion_version is not None:
            drift = _champion_drift(dataset_dir, champion_version)
            champion_dir = download_version(champion_version)
            champion_scores = score_model(
                champion_dir, dataset_dir, policy.eval_split, info, samples=0
            )
            champion = compute_metrics(champion_scores.confusion)
        decision = decide(candidate, champion, policy, info.class_names, drift)
        metrics = candidate.as_dict(info.class_names)
        if champion is not None:
            metrics.update(
                {f"champion/{k}": v for k, v in champion.as_dict(info.class_names).items()}
            )
        metrics.update(drift.metrics() if drift else {})
        metrics["gate_passed"] = float(decision.passed)
        version = str(champion_version.version) if champion_version else None

        # Fixed names in MLflow, whatever the paths KFP hands us are called.
        with open(os.path.join(outputs, REPORT_FILE), "w", encoding="utf-8") as handle:
            handle.write(
                render_report(
                    info.class_names,
                    info.ignore_label,
                    scores,
                    candidate,
                    champion,
                    version,
                    decision.passed,
                    decision.reason,
                    drift,
                )
            )
        with open(os.path.join(outputs, DRIFT_FILE), "w", encoding="utf-8") as handle:
            json.dump(_drift_document(drift), handle, indent=2)
        write_image_table(os.path.join(outputs, IMAGES_FILE), scores, champion_scores)
        for name, target in ((REPORT_FILE, report_path), (IMAGES_FILE, images_path)):
            if target:
                os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
                shutil.copyfile(os.path.join(outputs, name), target)

        mlflow.log_metrics(metrics)
        mlflow.log_params(
            {
                "eval_split": policy.eval_split,
                "min_mean_iou": policy.min_mean_iou,
                "max_drop": policy.max_drop,
                "max_class_drop": policy.max_class_drop,
                "allow_absent_classes": policy.allow_absent_classes,
                "max_class_shift": policy.max_class_shift,
            }
        )
        tags = {
            verdict.PASSED_TAG: str(decision.passed).lower(),
            verdict.REASON_TAG: decision.reason,
            verdict.MODEL_SHA256_TAG: model_sha256,
            verdict.MODEL_NAME_TAG: model_name,
            verdict.ALIAS_TAG: alias,
            verdict.CHAMPION_VERSION_TAG: version or verdict.NO_CHAMPION,
        }
        if train_run_id:
            tags[verdict.TRAIN_RUN_TAG] = train_run_id
        mlflow.set_tags(tags)
        mlflow.log_artifacts(outputs, "evaluation")
        log.info("evaluate: %s", decision.reason)
        return Evaluation(
            candidate,
            champion,
            version,
            decision,
            metrics,
            report_path or os.path.join(outputs, REPORT_FILE),
            images_path or os.path.join(outputs, IMAGES_FILE),
            run.info.run_id,
            model_sha256,
            info.class_names,
            tuple(tuple(int(n) for n in row) for row in scores.confusion),
            drift,
        )


def _champion_drift(dataset_dir: str, champion_version) -> DataDrift:
    """This data set's stats.json against the one the champion's train run logged."""
    import mlflow

    stats = storage.read_json(storage.join(dataset_dir, "stats.json"))
    source = f"run {champion_version.run_id} ({TRAINING_STATS_ARTIFACT})"
    try:
        folder = tempfile.mkdtemp(prefix="segpipe-champion-stats-")
        path = mlflow.artifacts.download_artifacts(
            run_id=champion_version.run_id, artifact_path=TRAINING_STATS_ARTIFACT, dst_path=folder
        )
        with open(path, encoding="utf-8") as handle:
            champion_stats = json.load(handle)
    except Exception as error:  # any failure means the same: no statistics to compare with
        log.warning("evaluate: no training statistics of the champion: %s", error)
        return DataDrift.unavailable(
            f"the champion's training statistics cannot be read from {source}: {error}"
        )
    return compare_stats(stats, champion_stats)


def _drift_document(drift: DataDrift | None) -> dict[str, object]:
    if drift is None:
        return {"available": False, "reason": "no champion to compare with"}
    return dataclasses.asdict(drift)
