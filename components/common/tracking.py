"""MLflow helpers: one parent run per pipeline run, one nested run per step."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import socket
import urllib.parse
from collections.abc import Iterator

DEFAULT_STORE = "sqlite:///mlflow.db"
PIPELINE_RUN_TAG = "segpipe.pipeline_run_id"
STEP_TAG = "segpipe.step"
IMAGE_TAG = "segpipe.image"  # the step image that ran the step (its SEGPIPE_IMAGE), if any
UID_TAG = "segpipe.uid"  # the uid of the step's process (10001 in segpipe's images)
DATABASE_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")


def tracking_uri() -> str:
    """`MLFLOW_TRACKING_URI`, or SQLite in the working directory (the registry needs a DB)."""
    return os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_STORE


def check_reachable(uri: str, timeout_s: float = 5.0) -> None:
    """Fail early, naming the URI, when the tracking server cannot be reached."""
    from mlflow.tracking import MlflowClient

    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme.split("+")[0] in DATABASE_SCHEMES and not importlib.util.find_spec(
        "sqlalchemy"
    ):
        # mlflow-skinny (the core install) is a client only: a database store needs full mlflow.
        raise RuntimeError(
            f"MLflow tracking store {uri} is a database, which this install cannot open: "
            "set MLFLOW_TRACKING_URI to an MLflow server (http://...), "
            "or pip install 'segpipe[all]' for the full mlflow package"
        )
    if parsed.scheme in ("http", "https"):
        # A plain connect first: MLflow's client retries a dead server for minutes.
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        try:
            socket.create_connection((parsed.hostname, port), timeout=timeout_s).close()
        except OSError as error:
            raise RuntimeError(
                f"MLflow tracking server at {uri} is unreachable: {error}"
            ) from error
    try:
        MlflowClient(tracking_uri=uri).search_experiments(max_results=1)
    except Exception as error:  # any transport or store failure means the same to the user
        raise RuntimeError(f"MLflow tracking server at {uri} is unreachable: {error}") from error


def provenance_tags() -> dict[str, str]:
    """Where this step runs: the process's uid and, inside a segpipe image, that image."""
    tags = {UID_TAG: str(os.getuid())}
    if image := os.environ.get("SEGPIPE_IMAGE"):
        tags[IMAGE_TAG] = image
    return tags


def _parent_run_id(client, experiment_id: str, pipeline_run_id: str) -> str:
    runs = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{PIPELINE_RUN_TAG}` = '{pipeline_run_id}'"
        f" and tags.`{STEP_TAG}` = 'pipeline'",
        max_results=1,
    )
    if runs:
        return runs[0].info.run_id
    run = client.create_run(
        experiment_id,
        run_name=f"pipeline-{pipeline_run_id}",
        tags={PIPELINE_RUN_TAG: pipeline_run_id, STEP_TAG: "pipeline"},
    )
    return run.info.run_id


@contextlib.contextmanager
def step_run(
    step: str, experiment: str, pipeline_run_id: str | None, run_id: str | None = None
) -> Iterator:
    """An active MLflow run for `step`, nested under the pipeline run's parent run.

    `run_id` reopens that earlier run instead (a retried task that resumes its work).

    Without a pipeline run id (a step whose outputs are cached across pipeline runs) the
    run stands alone, and later steps link to it by id.
    """
    import mlflow
    from mlflow.tracking import MlflowClient

    uri = tracking_uri()
    check_reachable(uri)
    mlflow.set_tracking_uri(uri)
    experiment_id = mlflow.set_experiment(experiment).experiment_id
    if pipeline_run_id is None:
        with mlflow.start_run(run_name=step, tags={STEP_TAG: step, **provenance_tags()}) as run:
            yield run
        return
    client = MlflowClient(tracking_uri=uri)
    parent_id = _parent_run_id(client, experiment_id, pipeline_run_id)
    tags = {PIPELINE_RUN_TAG: pipeline_run_id, STEP_TAG: step, **provenance_tags()}
    status = "FAILED"
    try:
        with mlflow.start_run(
            run_id=run_id, run_name=step, parent_run_id=parent_id, tags=tags
        ) as run:
            yield run
        status = "FINISHED"
    finally:
        client.set_terminated(parent_id, status=status)
