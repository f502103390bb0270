"""MLflow helpers: one parent run per pipeline run, one nested run per step."""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import logging
import os
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

from components.common.tracking_outage import OutageWindow, bounded_requests, connect, is_outage

DEFAULT_STORE = "sqlite:///mlflow.db"
PIPELINE_RUN_TAG = "segpipe.pipeline_run_id"
STEP_TAG = "segpipe.step"
IMAGE_TAG = "segpipe.image"  # the step image that ran the step (its SEGPIPE_IMAGE), if any
UID_TAG = "segpipe.uid"  # the uid of the step's process (10001 in segpipe's images)
DATABASE_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")

log = logging.getLogger(__name__)


def tracking_uri() -> str:
    """`MLFLOW_TRACKING_URI`, or SQLite in the working directory (the registry needs a DB)."""
    return os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_STORE


@contextlib.contextmanager
def store_lock(uri: str) -> Iterator[None]:
    """Hold an exclusive lock next to a SQLite store's file; a no-op for other stores.

    MLflow creates and migrates a new SQLite store on first use, which fails when two
    processes do it at once ("table datasets already exists"): the lock makes them take turns.
    """
    parsed = urllib.parse.urlparse(uri)
    database = parsed.path[1:] if parsed.scheme == "sqlite" else ""  # sqlite:///<path>
    if not database or database == ":memory:":
        yield
        return
    lock_path = Path(database + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)  # released when the file closes
        yield


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
    try:
        # A plain connect first: MLflow's client retries a dead server for minutes.
        connect(uri, timeout_s)
    except OSError as error:
        raise RuntimeError(f"MLflow tracking server at {uri} is unreachable: {error}") from error
    try:
        with store_lock(uri):  # the first use of a new SQLite store creates it
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
    step: str,
    experiment: str,
    pipeline_run_id: str | None,
    run_id: str | None = None,
    outage: OutageWindow | None = None,
) -> Iterator:
    """An active MLflow run for `step`, nested under the pipeline run's parent run.

    `run_id` reopens that earlier run instead (a retried task that resumes its work).

    Without a pipeline run id (a step whose outputs are cached across pipeline runs) the
    run stands alone, and later steps link to it by id.

    On success the runs are marked FINISHED, retried within `outage`'s window if one is
    given; on an error they are marked FAILED where the server answers, and the error goes on.
    """
    import mlflow
    from mlflow.tracking import MlflowClient

    uri = tracking_uri()
    check_reachable(uri)
    mlflow.set_tracking_uri(uri)
    with store_lock(uri):  # two steps starting at once may both create the experiment
        experiment_id = mlflow.set_experiment(experiment).experiment_id
    client = MlflowClient(tracking_uri=uri)
    tags = {STEP_TAG: step, **provenance_tags()}
    parent_id = None
    if pipeline_run_id is not None:
        parent_id = _parent_run_id(client, experiment_id, pipeline_run_id)
        tags[PIPELINE_RUN_TAG] = pipeline_run_id
    run = mlflow.start_run(run_id=run_id, run_name=step, parent_run_id=parent_id, tags=tags)
    try:
        yield run
    except BaseException:
        _mark_failed(client, run.info.run_id, parent_id)
        raise
    try:
        mlflow.end_run("FINISHED")  # leaves the run inactive here even when the call fails
    except Exception as error:
        if outage is None or not is_outage(error):
            raise
        outage.retry(
            "marking the run FINISHED",
            lambda: client.set_terminated(run.info.run_id, "FINISHED"),
        )
    if parent_id and outage:
        outage.retry(
            "marking the pipeline run FINISHED",
            lambda: client.set_terminated(parent_id, "FINISHED"),
        )
    elif parent_id:
        client.set_terminated(parent_id, "FINISHED")


def _mark_failed(client, run_id: str, parent_id: str | None) -> None:
    """Mark the step's run and its parent FAILED: one short try each, never raising."""
    import mlflow

    with bounded_requests(timeout_s=5, max_retries=1):
        try:
            mlflow.end_run("FAILED")
        except Exception as error:
            log.error("could not mark MLflow run %s FAILED (it stays RUNNING): %s", run_id, error)
        if parent_id:
            try:
                client.set_terminated(parent_id, "FAILED")
            except Exception as error:
                log.error(
                    "could not mark MLflow run %s FAILED (it stays RUNNING): %s", parent_id, error
                )
