"""Run the pipeline on this machine with kfp.local (SubprocessRunner, no Docker, no cluster)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from components.common.config import PublishConfig
from components.common.images import step_images
from components.common.lineage import UNCHANGED_OUTCOME
from components.common.tracking import (
    DEFAULT_STORE,
    PIPELINE_RUN_TAG,
    STEP_TAG,
    store_lock,
    tracking_uri,
)
from pipelines.pipeline import build_pipeline


@dataclass(frozen=True)
class RunSummary:
    status: str  # the snapshot's: "changed", or "unchanged, nothing to do" (the run ended there)
    snapshot: str  # its headline: what changed since the champion's data, or why it ended
    mean_iou: float | None  # None when the run ended after the snapshot
    passed: bool
    reason: str
    train_run_id: str
    registered_version: str | None
    tracking_uri: str
    browse: str  # the command that opens the MLflow UI on this run's store

    @property
    def skipped(self) -> bool:
        return self.status == UNCHANGED_OUTCOME


def default_tracking_store(workdir: Path) -> str:
    """A SQLite store in `workdir` (absolute, so every task subprocess finds the same one)."""
    return f"sqlite:///{(workdir / 'mlflow.db').resolve()}"


def _ensure_experiment(uri: str, experiment: str, artifact_root: Path) -> None:
    """Create the experiment with an absolute artifact root, so the UI finds files from anywhere."""
    from mlflow.tracking import MlflowClient

    with store_lock(uri):  # runs started together would race creating the store and experiment
        client = MlflowClient(tracking_uri=uri)
        if client.get_experiment_by_name(experiment) is None:
            client.create_experiment(experiment, artifact_location=artifact_root.resolve().as_uri())


def summarize(uri: str, model_name: str, snapshot, browse: str) -> RunSummary:
    """Read the run's outcome back: the snapshot artifact's metadata (`snapshot`, the pipeline's
    output) names the pipeline run; its train and evaluate runs in MLflow hold the rest."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    meta = snapshot.metadata
    status, headline = str(meta["status"]), str(meta.get("headline", ""))
    if status == UNCHANGED_OUTCOME:
        return RunSummary(status, headline, None, False, headline, "", None, uri, browse)
    snapshot_run = client.get_run(str(meta["mlflow_run_id"]))
    pipeline_run_id = snapshot_run.data.tags[PIPELINE_RUN_TAG]
    step_runs = {}
    for step in ("train", "evaluate"):
        (step_runs[step],) = client.search_runs(
            [snapshot_run.info.experiment_id],
            filter_string=f"tags.`{PIPELINE_RUN_TAG}` = '{pipeline_run_id}'"
            f" and tags.`{STEP_TAG}` = '{step}'",
        )
    train_run_id, evaluation = step_runs["train"].info.run_id, step_runs["evaluate"]
    versions = client.search_model_versions(
        filter_string=f"name = '{model_name}' and run_id = '{train_run_id}'"
    )
    return RunSummary(
        status=status,
        snapshot=headline,
        mean_iou=evaluation.data.metrics["mean_iou"],
        passed=evaluation.data.tags["gate.passed"] == "true",
        reason=evaluation.data.tags["gate.reason"],
        train_run_id=train_run_id,
        registered_version=str(versions[0].version) if versions else None,
        tracking_uri=uri,
        browse=browse,
    )


def run_local(params: dict[str, object], workdir: Path) -> RunSummary:
    """Run the whole pipeline locally, tracking to MLFLOW_TRACKING_URI or `workdir`/mlflow.db."""
    from kfp import local

    if tracking_uri() == DEFAULT_STORE:
        os.environ["MLFLOW_TRACKING_URI"] = default_tracking_store(workdir)
    uri = tracking_uri()
    pipeline = build_pipeline(step_images())
    params = dict(params)
    experiment = str(params.get("experiment", "segpipe"))
    if uri.startswith("sqlite:"):
        _ensure_experiment(uri, experiment, workdir / "mlartifacts")
    params.setdefault("export_root", str((workdir / "exports").resolve()))
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(workdir / "local_outputs"),
        raise_on_error=True,
    )
    outputs = pipeline(**params).outputs
    model_name = str(params.get("model_name", PublishConfig.model_name))
    browse = f"mlflow ui --backend-store-uri {uri}   (or: make ui)"
    return summarize(uri, model_name, outputs["snapshot"], browse)
