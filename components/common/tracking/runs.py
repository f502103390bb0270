"""MLflow helpers: one parent run per pipeline run, one nested run per step."""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import json
import logging
import os
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

from components.common import progress
from components.common.errors import SegpipeError, StepFailed
from components.common.tracking.outage import (
    OutageWindow,
    TrackingOutage,
    bounded_requests,
    connect,
    is_outage,
)
from components.common.tracking.pipeline_runs import (
    PIPELINE_RUN_TAG,
    STEP_TAG,
    ensure_parent,
    read_lineage,
)
from components.common.uri_credentials import redact, scrub

DEFAULT_STORE = "sqlite:///mlflow.db"
# MLflow 3's marker of a model-training (not GenAI) experiment. Its UI (3.17) decides the mode
# from the GenAI | Model training switch, or the link's `workflowType=machine_learning`.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING = "custom_model_development"
# A view of the runs table that MLflow's UI loads from the link's `viewStateShareKey=segpipe`:
# the columns a person compares runs by (MLflow 3 shows no metric columns by default).
SHARED_VIEW_KEY = "segpipe"
SHARED_VIEW_TAG = f"mlflow.sharedViewState.{SHARED_VIEW_KEY}"
IMAGE_TAG = "segpipe.image"  # the step image that ran the step (its SEGPIPE_IMAGE), if any
UID_TAG = "segpipe.uid"  # the uid of the step's process (10001 in segpipe's images)
ERROR_TAG = "segpipe.error"  # on a failed step's run: the error that ended it
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


class NoTrackingStore(SegpipeError, LookupError):
    """A command that only reads (or moves an alias) found no MLflow store where it looked."""

    reason = "no-tracking-store"


def check_store_exists(uri: str, command: str) -> None:
    """Refuse, saying where it looked, when `uri` is a SQLite store whose file is missing.

    MLflow creates a missing SQLite store on first use; a command that only reads one, or
    moves an alias, must not leave an empty store behind in the wrong folder.
    """
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme != "sqlite":
        return
    database = parsed.path[1:]
    if database and database != ":memory:" and not os.path.exists(database):
        raise NoTrackingStore(
            f"no MLflow store at {os.path.abspath(database)} ({uri}): {command} only reads the "
            "store segpipe run wrote; run it in the folder that holds mlflow.db (segpipe run's "
            "--workdir) or point MLFLOW_TRACKING_URI at the store or server "
            "(e.g. sqlite:////path/to/mlflow.db or http://HOST:5000)"
        )


def check_reachable(uri: str, timeout_s: float = 5.0) -> None:
    """Fail early, naming the URI, when the tracking server cannot be reached."""
    from mlflow.tracking import MlflowClient

    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme.split("+")[0] in DATABASE_SCHEMES and not importlib.util.find_spec(
        "sqlalchemy"
    ):
        # mlflow-skinny (the core install) is a client only: a database store needs full mlflow.
        raise StepFailed(
            f"MLflow tracking store {redact(uri)} is a database, which this install cannot open: "
            "set MLFLOW_TRACKING_URI to an MLflow server (http://...), "
            "or pip install 'segpipe[all]' for the full mlflow package"
        )
    try:
        # A plain connect first: MLflow's client retries a dead server for minutes.
        connect(uri, timeout_s)
    except OSError as error:
        raise StepFailed(
            f"MLflow tracking server at {redact(uri)} is unreachable: {scrub(str(error), uri)}"
        ) from error
    try:
        with store_lock(uri):  # the first use of a new SQLite store creates it
            MlflowClient(tracking_uri=uri).search_experiments(max_results=1)
    except Exception as error:  # any transport or store failure means the same to the user
        raise StepFailed(
            f"MLflow tracking server at {redact(uri)} is unreachable: {scrub(str(error), uri)}"
        ) from error


# the runs table's columns in it: the headline a person compares pipeline runs by. Per-class
# scores are on each run's page; the wide Models and Dataset columns, which the table puts
# first, are one click away (Columns)
RUNS_VIEW_COLUMNS = ["metrics.`mean_iou`", "tags.`gate.passed`", "tags.`registered_version`"]


def prepare_experiment(client, name: str, artifact_location: str | None = None) -> str:
    """The experiment's id, created if missing, marked as model training, with segpipe's view.

    Call under `store_lock` where two processes may create it at once.
    """
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        experiment_id = client.create_experiment(name, artifact_location=artifact_location)
        tags: dict[str, str] = {}
    else:
        experiment_id, tags = experiment.experiment_id, experiment.tags
    if EXPERIMENT_KIND_TAG not in tags:  # a kind someone chose by hand is kept
        client.set_experiment_tag(experiment_id, EXPERIMENT_KIND_TAG, MODEL_TRAINING)
    if SHARED_VIEW_TAG not in tags:
        view = json.dumps({"selectedColumns": RUNS_VIEW_COLUMNS})
        client.set_experiment_tag(experiment_id, SHARED_VIEW_TAG, view)
    return experiment_id


def runs_link(ui_url: str, experiment_id: str, run_id: str | None = None) -> str:
    """A link to the runs table (or one run) that opens in MLflow's model-training mode."""
    if run_id:
        return f"{ui_url}/#/experiments/{experiment_id}/runs/{run_id}?workflowType=machine_learning"
    return (
        f"{ui_url}/#/experiments/{experiment_id}/runs"
        f"?viewStateShareKey={SHARED_VIEW_KEY}&workflowType=machine_learning"
    )


def model_version_link(ui_url: str, model_name: str, version: str) -> str:
    """A link to a registered model's version page, in MLflow's model-training mode."""
    name = urllib.parse.quote(model_name, safe="")
    return f"{ui_url}/#/models/{name}/versions/{version}?workflowType=machine_learning"


def provenance_tags() -> dict[str, str]:
    """Where this step runs: the process's uid and, inside a segpipe image, that image."""
    tags = {UID_TAG: str(os.getuid())}
    if image := os.environ.get("SEGPIPE_IMAGE"):
        tags[IMAGE_TAG] = image
    return tags


@contextlib.contextmanager
def step_run(
    step: str,
    experiment: str,
    pipeline_run_id: str | None,
    run_id: str | None = None,
    outage: OutageWindow | None = None,
    dataset_dir: str | None = None,
    data_dir: str = "",
) -> Iterator:
    """An active MLflow run for `step`, nested under the pipeline run's parent run.

    `run_id` reopens that earlier run instead (a retried task that resumes its work).
    `dataset_dir`'s lineage names the parent (data set and time) and its preprocess run,
    which is nested under the parent too; a step before preprocess (the snapshot) names the
    parent by `data_dir`.

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
    client = MlflowClient(tracking_uri=uri)
    with store_lock(uri):  # two steps starting at once may both create the experiment
        experiment_id = prepare_experiment(client, experiment)
    mlflow.set_experiment(experiment_id=experiment_id)
    tags = {STEP_TAG: step, **provenance_tags()}
    parent_id = None
    if pipeline_run_id is not None:
        lineage = read_lineage(dataset_dir) or ({"data_dir": data_dir} if data_dir else {})
        parent_id = ensure_parent(client, experiment_id, pipeline_run_id, lineage)
        tags[PIPELINE_RUN_TAG] = pipeline_run_id
    run = mlflow.start_run(run_id=run_id, run_name=step, parent_run_id=parent_id, tags=tags)
    try:
        yield run
    except BaseException as error:
        progress.failed(step, error)  # for segpipe run's terminal: the reason, on one line
        _mark_failed(client, run.info.run_id, parent_id, error)
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


def error_summary(error: BaseException) -> str:
    """One line saying what went wrong: the message, or the error's type when it has none."""
    text = " ".join(str(error).split())
    return text or type(error).__name__


def _mark_failed(client, run_id: str, parent_id: str | None, cause: BaseException) -> None:
    """Mark the step's run and its parent FAILED, recording why (tag `segpipe.error`):
    one short try each, never raising."""
    import mlflow

    answered = True
    # a server already known to be down (or hung) gets a second, not five, to answer
    timeout_s = 1 if isinstance(cause, TrackingOutage) else 5
    with bounded_requests(timeout_s=timeout_s, max_retries=0):
        try:
            mlflow.set_tag(ERROR_TAG, f"{type(cause).__name__}: {error_summary(cause)}"[:5000])
        except Exception as error:
            answered = False
            log.error("could not record the error on MLflow run %s: %s", run_id, error)
        try:  # always tried: it leaves no active run behind (MLflow ends one at exit, slowly)
            mlflow.end_run("FAILED")
        except Exception as error:
            answered = False
            log.error("could not mark MLflow run %s FAILED (it stays RUNNING): %s", run_id, error)
        if parent_id and not answered:  # a dead or hung server: no third wait
            log.error("could not mark MLflow run %s FAILED (it stays RUNNING)", parent_id)
        elif parent_id:
            try:
                client.set_terminated(parent_id, "FAILED")
            except Exception as error:
                log.error(
                    "could not mark MLflow run %s FAILED (it stays RUNNING): %s", parent_id, error
                )
