"""Stand-in train and evaluate runs, recorded in MLflow as those steps record them (no TF)."""

from __future__ import annotations

from pathlib import Path


def record_evaluation(model_dir: Path, pipeline_run_id: str, champion: str, **changes) -> str:
    """A finished evaluate run tagged as the evaluate step tags one (passed unless changed)."""
    import mlflow

    from components.common import verdict
    from components.common.data.digest import folder_sha256
    from components.common.tracking.runs import PIPELINE_RUN_TAG, STEP_TAG

    tags = {
        PIPELINE_RUN_TAG: pipeline_run_id,
        STEP_TAG: "evaluate",
        verdict.PASSED_TAG: "true",
        verdict.REASON_TAG: "stand-in evaluation",
        verdict.MODEL_SHA256_TAG: folder_sha256(str(model_dir)),
        verdict.MODEL_NAME_TAG: "m",
        verdict.ALIAS_TAG: "champion",
        verdict.CHAMPION_VERSION_TAG: champion,
        **changes,
    }
    with mlflow.start_run(tags=tags) as run:
        mlflow.log_metric("mean_iou", 0.5)
    return run.info.run_id


def stand_in_train_run(model_dir: Path) -> str:
    """A train run that logged `model_dir` as its `model`, as the train step does."""
    import mlflow

    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(model_dir), "model")
    return run.info.run_id
