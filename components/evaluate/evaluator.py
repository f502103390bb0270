"""Score the candidate and the current champion on the same shards, then apply the gate."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import dataclass

from components.common import verdict
from components.common.config import GatePolicy
from components.common.dataset import read_dataset_info
from components.common.digest import folder_sha256
from components.common.tracking import check_reachable, step_run, tracking_uri
from components.evaluate.gate import Decision, check_policy, decide
from components.evaluate.metrics import SegmentationMetrics, compute_metrics

log = logging.getLogger(__name__)
CHAMPION_ALIAS = "champion"
REPORT_FILE = "report.html"
IMAGES_FILE = "per_image_iou.parquet"


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

    def confusion_matrix(self) -> tuple[list[str], list[list[int]]]:
        """(class names, matrix) as KFP's ClassificationMetrics takes them."""
        return list(self.class_names), [list(row) for row in self.confusion]


def evaluate(
    dataset_dir: str,
    model_dir: str,
    policy: GatePolicy,
    model_name: str,
    experiment: str = "segpipe",
    pipeline_run_id: str = "manual",
    report_path: str | None = None,
    images_path: str | None = None,
    train_run_id: str = "",
    alias: str = CHAMPION_ALIAS,
) -> Evaluation:
    """Metrics for the candidate in `model_dir` and for `model_name@alias`, plus the gate.

    Writes the HTML report and the per-image Parquet table (to `report_path` and
    `images_path` when given) and logs both to the step's MLflow run under `evaluation/`.
    Tags the run with what it judged (the `verdict` tags: the model folder's digest, its train
    run when given, the champion version compared against), which publish checks.
    """
    import mlflow
    from mlflow.tracking import MlflowClient

    from components.common.registry import alias_version, download_version
    from components.evaluate.report import render_report, write_image_table
    from components.evaluate.scoring import score_model

    check_reachable(tracking_uri())  # before loading any model: fail in seconds, not minutes
    info = read_dataset_info(dataset_dir)
    check_policy(policy, info.class_names)
    model_sha256 = folder_sha256(model_dir)  # what publish must find again, byte for byte
    outputs = tempfile.mkdtemp(prefix="segpipe-evaluate-")
    with step_run("evaluate", experiment, pipeline_run_id, dataset_dir=dataset_dir) as run:
        scores = score_model(model_dir, dataset_dir, policy.eval_split, info)
        candidate = compute_metrics(scores.confusion)
        champion_version = alias_version(MlflowClient(tracking_uri()), model_name, alias)
        champion_scores = champion = None
        if champion_version is not None:
            champion_dir = download_version(champion_version)
            champion_scores = score_model(
                champion_dir, dataset_dir, policy.eval_split, info, samples=0
            )
            champion = compute_metrics(champion_scores.confusion)
        decision = decide(candidate, champion, policy, info.class_names)
        metrics = candidate.as_dict(info.class_names)
        if champion is not None:
            metrics.update(
                {f"champion/{k}": v for k, v in champion.as_dict(info.class_names).items()}
            )
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
                )
            )
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
        )
