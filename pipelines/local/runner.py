"""Run the pipeline on this machine with kfp.local (SubprocessRunner, no Docker, no cluster)."""

from __future__ import annotations

import dataclasses
import os
import re
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from components.common import progress
from components.common.settings.config import DEFAULT_EXPERIMENT, PublishConfig
from components.common.tracking.lineage import (
    CHANGED_OUTCOME,
    DATA_CHANGES_TAG,
    LINEAGE_UNVERIFIED_TAG,
    UNCHANGED_OUTCOME,
)
from components.common.tracking.registry import run_versions
from components.common.tracking.runs import (
    DEFAULT_STORE,
    PIPELINE_RUN_TAG,
    STEP_TAG,
    model_version_link,
    prepare_experiment,
    runs_link,
    store_lock,
    tracking_uri,
)
from pipelines.console import Failure, capture, keep_log
from pipelines.images import step_images
from pipelines.local import ui
from pipelines.local.termination import Terminated, sigterm_unwinds, stop_descendants
from pipelines.pipeline import build_pipeline

FAILED_TASK = re.compile(r"Inner task failed: '(?P<task>[^']+)'")


@dataclass(frozen=True)
class RunSummary:
    mean_iou: float | None  # None when the run ended after the snapshot
    passed: bool
    reason: str
    train_run_id: str
    registered_version: str | None
    tracking_uri: str
    browse: str  # how to open the links: `segpipe ui ...` for a local store
    link: str = ""  # the pipeline run's parent run in the MLflow UI
    runs_link: str = ""  # the experiment's runs table (segpipe's shared view)
    model_link: str = ""  # the registered version's page, when the run registered one
    log_path: str = ""  # the run's full output
    took_s: float = 0.0
    outcome: str = CHANGED_OUTCOME  # or "unchanged, nothing to do": the run ended there
    data_changes: str = ""  # the snapshot's headline: what changed since the champion's data
    warning: str = ""  # the champion's lineage could not be verified: why (the run retrained)

    @property
    def unchanged(self) -> bool:
        return self.outcome == UNCHANGED_OUTCOME


class RunFailed(Exception):
    """A step failed: which, why (one line), where the full output is, and the run's MLflow
    parent run in the UI ("" when it cannot be found)."""

    def __init__(self, step: str, reason: str, log_path: Path, link: str = ""):
        super().__init__(f"{step}: {reason}")
        self.step, self.reason, self.log_path, self.link = step, reason, log_path, link


def run_reported(
    run: Callable[[], dict], pipeline_root: Path, params: dict[str, object], verbose: bool
) -> tuple[dict, Path]:
    """`run()` (a kfp.local pipeline run) with its output in a log file and a line per step on
    the terminal; returns its outputs and the log's path. RunFailed names the failed step."""
    model_name = str(params.get("model_name", PublishConfig.model_name))
    alias = str(params.get("alias", PublishConfig.alias))
    log_path = pipeline_root / f"segpipe-{time.strftime('%Y%m%d-%H%M%S')}.log"
    failure = None
    saved = os.environ.get(progress.ENV)
    os.environ[progress.ENV] = "1"  # the tasks print their progress events
    try:
        with capture(log_path, verbose, model_name, alias) as reporter:
            try:
                outputs = run()
            except RuntimeError as error:  # kfp.local: a task failed
                match = FAILED_TASK.search(str(error))
                failure = reporter.failure or Failure(
                    match["task"] if match else "pipeline", " ".join(str(error).split())
                )
            except Terminated as stopped:  # the log stays where it is: name it
                stopped.log_path = log_path
                raise
            except KeyboardInterrupt as interrupted:  # Ctrl-C: stopped as by SIGTERM
                stopped = Terminated(signal.SIGINT)
                stopped.log_path = log_path
                raise stopped from interrupted
    finally:
        if saved is None:
            os.environ.pop(progress.ENV, None)
        else:
            os.environ[progress.ENV] = saved
    log_path = keep_log(log_path, reporter)
    if failure is not None:
        raise RunFailed(failure.step, failure.reason, log_path)
    return outputs, log_path


def default_tracking_store(workdir: Path) -> str:
    """A SQLite store in `workdir` (absolute, so every task subprocess finds the same one)."""
    return f"sqlite:///{(workdir / 'mlflow.db').resolve()}"


def _ensure_experiment(uri: str, experiment: str, artifact_root: Path) -> None:
    """Create the experiment with an absolute artifact root, so the UI finds files from anywhere."""
    from mlflow.tracking import MlflowClient

    with store_lock(uri):  # runs started together would race creating the store and experiment
        client = MlflowClient(tracking_uri=uri)
        prepare_experiment(client, experiment, artifact_root.resolve().as_uri())


def summarize(
    uri: str, model_name: str, outputs: dict, browse: str, ui_base: str | None = None
) -> RunSummary:
    """Read the run's outcome back from MLflow from the pipeline's `outputs`: the parent run's
    headline (the snapshot's outcome), the evaluate step's metrics and gate tags. Links point
    at `ui_base` (default: where the UI of `uri` is)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    parent = client.get_run(outputs["parent_run_id"])
    outcome = outputs["outcome"] or CHANGED_OUTCOME
    data_changes = parent.data.tags.get(DATA_CHANGES_TAG, "")
    warning = parent.data.tags.get(LINEAGE_UNVERIFIED_TAG, "")
    ui_base = ui_base or ui.ui_url(uri)
    link = runs_link(ui_base, parent.info.experiment_id, parent.info.run_id)
    table = runs_link(ui_base, parent.info.experiment_id)
    if outcome == UNCHANGED_OUTCOME:  # the run ended after the snapshot
        return RunSummary(
            None, False, UNCHANGED_OUTCOME, "", None, uri, browse, link, table, outcome=outcome,
            data_changes=data_changes, warning=warning,
        )  # fmt: skip
    train_run_id = outputs["train_run_id"]
    train_run = client.get_run(train_run_id)
    pipeline_run_id = train_run.data.tags[PIPELINE_RUN_TAG]
    (evaluation,) = client.search_runs(
        [train_run.info.experiment_id],
        filter_string=f"tags.`{PIPELINE_RUN_TAG}` = '{pipeline_run_id}'"
        f" and tags.`{STEP_TAG}` = 'evaluate'",
    )
    versions = run_versions(client, model_name, train_run_id)
    version = str(versions[0].version) if versions else None
    return RunSummary(
        mean_iou=evaluation.data.metrics["mean_iou"],
        passed=evaluation.data.tags["gate.passed"] == "true",
        reason=evaluation.data.tags["gate.reason"],
        train_run_id=train_run_id,
        registered_version=version,
        tracking_uri=uri,
        browse=browse,
        link=link,
        runs_link=table,
        model_link=model_version_link(ui_base, model_name, version) if version else "",
        outcome=outcome,
        data_changes=data_changes,
        warning=warning,
    )


def run_local(params: dict[str, object], workdir: Path, verbose: bool = False) -> RunSummary:
    """Run the whole pipeline locally, tracking to MLFLOW_TRACKING_URI or `workdir`/mlflow.db."""
    from kfp import local

    if tracking_uri() == DEFAULT_STORE:
        os.environ["MLFLOW_TRACKING_URI"] = default_tracking_store(workdir)
    uri = tracking_uri()
    pipeline = build_pipeline(step_images())
    params = dict(params)
    experiment = str(params.get("experiment", DEFAULT_EXPERIMENT))
    params.setdefault("export_root", str((workdir / "exports").resolve()))
    pipeline_root = workdir / "local_outputs"
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(pipeline_root),
        raise_on_error=True,
    )

    def run() -> dict:
        if uri.startswith("sqlite:"):  # a new store's set-up talks too: into the log
            _ensure_experiment(uri, experiment, workdir / "mlartifacts")
        return pipeline(**params).outputs

    started, began_s = time.monotonic(), time.time()
    try:
        with sigterm_unwinds(stop_started=True):  # the steps are this process's children
            outputs, log_path = run_reported(run, pipeline_root, params, verbose)
    except RunFailed as failed:
        failed.link = failed_run_link(uri, experiment, began_s)
        raise
    except Terminated as stopped:  # the finish step never ran: close the MLflow runs instead
        if stopped.signal == signal.SIGINT:  # Ctrl-C reached the steps too: some may be ending
            stop_descendants()  # (on SIGTERM the handler has stopped them)
        close_stopped_run(uri, experiment, began_s)
        raise
    model_name = str(params.get("model_name", PublishConfig.model_name))
    summary = summarize(uri, model_name, outputs, ui.browse_hint(uri))
    return dataclasses.replace(summary, log_path=str(log_path), took_s=time.monotonic() - started)


def close_stopped_run(uri: str, experiment: str, since_s: float) -> str:
    """Close the MLflow runs of the pipeline run started since `since_s` (epoch seconds) as
    KILLED, its headline on the parent, as its finish step would have on a cancel. Returns its
    pipeline run id; "" when no run of it is found or the store does not answer in seconds."""
    import logging

    from mlflow.tracking import MlflowClient

    from components.common.tracking.outage import bounded_requests
    from components.finish import closer

    quiet = logging.getLogger(closer.__name__)
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # the runs it marks are no news to whoever stopped the run
    try:
        with bounded_requests(5, max_retries=0):
            client = MlflowClient(tracking_uri=uri)
            pipeline_run_id = _first_pipeline_run(client, experiment, since_s)
            if pipeline_run_id:
                closer.close_pipeline_run(
                    experiment, pipeline_run_id, "CANCELLED", wait_s=5, uri=uri
                )
    except Exception:  # stopping must not hang or fail on the store: the runs stay as they are
        return ""
    finally:
        quiet.setLevel(level)
    return pipeline_run_id


def _first_pipeline_run(client, experiment: str, since_s: float) -> str:
    """The pipeline run id on the first MLflow run started since `since_s`, or "": this run's,
    though another run on the same store may have started later."""
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return ""
    since = f"attributes.start_time >= {int(since_s * 1000)}"
    oldest_first = ["attributes.start_time ASC"]
    for run in client.search_runs([found.experiment_id], since, order_by=oldest_first):
        if PIPELINE_RUN_TAG in run.data.tags:
            return run.data.tags[PIPELINE_RUN_TAG]
    return ""


def failed_run_link(uri: str, experiment: str, since_s: float, ui_base: str | None = None) -> str:
    """The UI link of the newest pipeline parent run started since `since_s` (epoch seconds):
    the run that just failed. "" when there is none, or the store does not answer in seconds
    (the failure may be that it is down)."""
    from mlflow.tracking import MlflowClient

    from components.common.tracking.outage import bounded_requests

    try:
        with bounded_requests(5, max_retries=0):
            client = MlflowClient(tracking_uri=uri)
            found = client.get_experiment_by_name(experiment)
            if found is None:
                return ""
            since = f"attributes.start_time >= {int(since_s * 1000)}"
            runs = client.search_runs(
                [found.experiment_id],
                f"tags.`{STEP_TAG}` = 'pipeline' and {since}",
                order_by=["attributes.start_time DESC"],
                max_results=1,
            )
    except Exception:  # any failure means the same: no link to show
        return ""
    if not runs:
        return ""
    return runs_link(ui_base or ui.ui_url(uri), found.experiment_id, runs[0].info.run_id)
