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
from components.common.data.table_preview import csv_text
from components.common.settings.config import GatePolicy, RunContext
from components.common.tracking.runs import check_reachable, step_run, tracking_uri
from components.evaluate.drift import DataDrift, compare_stats
from components.evaluate.gate import Decision, check_policy, decide
from components.evaluate.metrics import SegmentationMetrics, compute_metrics

log = logging.getLogger(__name__)
REPORT_FILE = "report.html"
IMAGES_FILE = "per_image_iou.parquet"
IMAGES_PREVIEW_FILE = "per_image_iou.csv"
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
    run: RunContext,
    report_path: str | None = None,
    images_path: str | None = None,
    train_run_id: str = "",
    snapshot_dir: str | None = None,
) -> Evaluation:
    """Metrics for the candidate in `model_dir` and for `run.model_name@run.alias`, plus the
    gate.

    Writes the HTML report and the per-image Parquet table (to `report_path` and
    `images_path` when given) and logs both to the step's MLflow run under `evaluation/`.
    Tags the run with what it judged (the `verdict` tags: the model folder's digest, its train
    run when given, the champion version compared against), which publish checks.
    Compares the data set's statistics with the champion's training data's (`drift.json`,
    `drift/...` metrics) for the gate's `max_class_shift`; `snapshot_dir` (the snapshot step's
    output) is logged as the run's dataset input.
    """
    import mlflow

    from components.evaluate.scoring import score_model

    check_reachable(tracking_uri())  # before loading any model: fail in seconds, not minutes
    info = read_dataset_info(dataset_dir)
    check_policy(policy, info.class_names)
    model_sha256 = folder_sha256(model_dir)  # what publish must find again, byte for byte
    outputs = tempfile.mkdtemp(prefix="segpipe-evaluate-")
    with step_run("evaluate", run.experiment, run.pipeline_run_id, dataset_dir=dataset_dir) as step:
        if snapshot_dir:
            from components.common.tracking.lineage import log_training_data

            log_training_data(snapshot_dir, context="evaluation")
        scores = score_model(model_dir, dataset_dir, policy.eval_split, info)
        candidate = compute_metrics(scores.confusion)
        champion = _score_champion(dataset_dir, policy, info, run)
        decision = decide(candidate, champion.metrics, policy, info.class_names, champion.drift)
        metrics = _flat_metrics(candidate, champion, decision, info.class_names)
        _write_outputs(outputs, info, scores, candidate, champion, decision)
        for name, target in ((REPORT_FILE, report_path), (IMAGES_FILE, images_path)):
            if target:
                os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
                shutil.copyfile(os.path.join(outputs, name), target)
        mlflow.log_metrics(metrics)
        mlflow.log_params(_policy_params(policy))
        mlflow.set_tags(_verdict_tags(decision, model_sha256, run, champion.version, train_run_id))
        mlflow.log_artifacts(outputs, "evaluation")
        log.info("evaluate: %s", decision.reason)
        return Evaluation(
            candidate,
            champion.metrics,
            champion.version,
            decision,
            metrics,
            report_path or os.path.join(outputs, REPORT_FILE),
            images_path or os.path.join(outputs, IMAGES_FILE),
            step.info.run_id,
            model_sha256,
            info.class_names,
            tuple(tuple(int(n) for n in row) for row in scores.confusion),
            champion.drift,
        )


@dataclass(frozen=True)
class _Champion:
    """The model the candidate must beat, scored on the same shards (all None without one)."""

    version: str | None = None
    scores: object = None  # scoring.Scores
    metrics: SegmentationMetrics | None = None
    drift: DataDrift | None = None


def _score_champion(dataset_dir: str, policy: GatePolicy, info, run: RunContext) -> _Champion:
    """Score `run.model_name@run.alias` (if it exists) and compare its training data's
    statistics with this data set's."""
    from mlflow.tracking import MlflowClient

    from components.common.tracking.registry import alias_version, download_version
    from components.evaluate.scoring import score_model

    version = alias_version(MlflowClient(tracking_uri()), run.model_name, run.alias)
    if version is None:
        return _Champion()
    drift = _champion_drift(dataset_dir, version)
    scores = score_model(download_version(version), dataset_dir, policy.eval_split, info, samples=0)
    return _Champion(str(version.version), scores, compute_metrics(scores.confusion), drift)


def _flat_metrics(
    candidate: SegmentationMetrics,
    champion: _Champion,
    decision: Decision,
    class_names: tuple[str, ...],
) -> dict[str, float]:
    """The candidate's metrics, the champion's under `champion/`, drift, and the verdict."""
    metrics = candidate.as_dict(class_names)
    if champion.metrics is not None:
        champion_metrics = champion.metrics.as_dict(class_names)
        metrics.update({f"champion/{k}": v for k, v in champion_metrics.items()})
    metrics.update(champion.drift.metrics() if champion.drift else {})
    metrics["gate_passed"] = float(decision.passed)
    return metrics


def _write_outputs(outputs: str, info, scores, candidate, champion: _Champion, decision) -> None:
    """The report, drift.json and the per-image table, under fixed names in `outputs`."""
    from components.evaluate.report import render_report, write_image_table

    report = render_report(
        info.class_names,
        info.ignore_label,
        scores,
        candidate,
        champion.metrics,
        champion.version,
        decision.passed,
        decision.reason,
        champion.drift,
    )
    with open(os.path.join(outputs, REPORT_FILE), "w", encoding="utf-8") as handle:
        handle.write(report)
    with open(os.path.join(outputs, DRIFT_FILE), "w", encoding="utf-8") as handle:
        json.dump(_drift_document(champion.drift), handle, indent=2)
    write_image_table(os.path.join(outputs, IMAGES_FILE), scores, champion.scores)
    with open(os.path.join(outputs, IMAGES_FILE), "rb") as table:  # the UI previews CSV only
        preview = csv_text(table.read())
    with open(os.path.join(outputs, IMAGES_PREVIEW_FILE), "w", encoding="utf-8") as handle:
        handle.write(preview)


def _policy_params(policy: GatePolicy) -> dict[str, object]:
    return {
        "eval_split": policy.eval_split,
        "min_mean_iou": policy.min_mean_iou,
        "max_drop": policy.max_drop,
        "max_class_drop": policy.max_class_drop,
        "allow_absent_classes": policy.allow_absent_classes,
        "max_class_shift": policy.max_class_shift,
    }


def _verdict_tags(
    decision: Decision,
    model_sha256: str,
    run: RunContext,
    champion_version: str | None,
    train_run_id: str,
) -> dict[str, str]:
    """What the evaluation judged, as the tags publish checks."""
    tags = {
        verdict.PASSED_TAG: str(decision.passed).lower(),
        verdict.REASON_TAG: decision.reason,
        verdict.MODEL_SHA256_TAG: model_sha256,
        verdict.MODEL_NAME_TAG: run.model_name,
        verdict.ALIAS_TAG: run.alias,
        verdict.CHAMPION_VERSION_TAG: champion_version or verdict.NO_CHAMPION,
    }
    if train_run_id:
        tags[verdict.TRAIN_RUN_TAG] = train_run_id
    return tags


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
