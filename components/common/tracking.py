"""MLflow helpers: one parent run per pipeline run, one nested run per step, outage handling."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import socket
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

DEFAULT_STORE = "sqlite:///mlflow.db"
PIPELINE_RUN_TAG = "segpipe.pipeline_run_id"
STEP_TAG = "segpipe.step"
MAX_RETRY_DELAY_S = 15.0  # between tries while the server is down
PROBE_TIMEOUT_S = 2.0  # a connect to a server that is down, before a real call

log = logging.getLogger(__name__)
T = TypeVar("T")


def tracking_uri() -> str:
    """`MLFLOW_TRACKING_URI`, or SQLite in the working directory (the registry needs a DB)."""
    return os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_STORE


def _connect(uri: str, timeout_s: float) -> None:
    """Open and close a TCP connection to an http(s) tracking server; OSError if it fails."""
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme in ("http", "https"):
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        socket.create_connection((parsed.hostname, port), timeout=timeout_s).close()


class _Unreachable(Exception):
    """A plain connect to the tracking server failed."""


def _probe(uri: str) -> None:
    try:
        _connect(uri, PROBE_TIMEOUT_S)
    except OSError as error:
        raise _Unreachable(f"cannot connect: {error}") from error


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

    try:
        # A plain connect first: MLflow's client retries a dead server for minutes.
        _connect(uri, timeout_s)
    except OSError as error:
        raise RuntimeError(f"MLflow tracking server at {uri} is unreachable: {error}") from error
    try:
        with store_lock(uri):  # the first use of a new SQLite store creates it
            MlflowClient(tracking_uri=uri).search_experiments(max_results=1)
    except Exception as error:  # any transport or store failure means the same to the user
        raise RuntimeError(f"MLflow tracking server at {uri} is unreachable: {error}") from error


def request_timeout_s(window_s: float) -> int:
    """A per-request timeout short enough for several tries within an outage window."""
    return int(max(5, min(30, window_s / 10)))


@contextlib.contextmanager
def bounded_requests(timeout_s: int, max_retries: int = 2) -> Iterator[None]:
    """MLflow HTTP calls that give up after about `max_retries + 1` times `timeout_s` seconds.

    MLflow's defaults (a 120 s timeout, 7 retries with exponential backoff) keep one call
    to a dead server going for about 12 minutes; callers retry on their own terms instead.
    MLflow reads these variables at every request.
    """
    settings = {
        "MLFLOW_HTTP_REQUEST_TIMEOUT": str(timeout_s),
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(max_retries),
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",  # sleeps 0 s, then 2 s
        "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.5",
    }
    saved = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def is_outage(error: BaseException) -> bool:
    """Whether `error` says the server could not be reached or failed, rather than refused."""
    import requests
    from mlflow.exceptions import MlflowException

    if isinstance(error, MlflowException):  # transport errors arrive as INTERNAL_ERROR (500)
        status = error.get_http_status_code()
    elif isinstance(error, requests.HTTPError) and error.response is not None:
        status = error.response.status_code  # artifact uploads
    else:
        return isinstance(error, (requests.ConnectionError, requests.Timeout))
    return status >= 500 or status == 429


class TrackingOutage(RuntimeError):
    """The tracking server stayed unreachable for longer than the allowed window."""


class OutageWindow:
    """How long the tracking server has been unreachable, against the `window_s` allowed."""

    def __init__(self, window_s: float, uri: str):
        self.window_s = window_s
        self.uri = uri
        self._down_since: float | None = None
        self._last_error = ""

    @property
    def down_for(self) -> float:
        """Seconds since the first failed call of the current outage (0 when up)."""
        return 0.0 if self._down_since is None else time.monotonic() - self._down_since

    def expired(self) -> bool:
        return self._down_since is not None and self.down_for > self.window_s

    def attempt(self, action: str, call: Callable[[], object]) -> bool:
        """One try of `call`: False (and the outage noted) when the server is unreachable."""
        return self._try(action, call)[0]

    def retry(self, action: str, call: Callable[[], T]) -> T:
        """`call`, tried again while the server is down, until the window has passed."""
        delay = 1.0
        while True:
            done, result = self._try(action, call)
            if done:
                return result
            if self.expired():
                raise TrackingOutage(self.message(action))
            time.sleep(min(delay, max(0.1, self.window_s - self.down_for)))
            delay = min(2 * delay, MAX_RETRY_DELAY_S)

    def _try(self, action: str, call: Callable[[], T]) -> tuple[bool, T | None]:
        """(True, its result), or (False, None) when the server is unreachable.

        While an outage lasts, a quick connect comes first, so a server that is still down
        costs seconds, not MLflow's request timeouts and retries.
        """
        try:
            if self._down_since is not None:
                _probe(self.uri)
            result = call()
        except Exception as error:
            if not isinstance(error, _Unreachable) and not is_outage(error):
                raise
            self._failed(action, error)
            return False, None
        self._recovered()
        return True, result

    def check(self, consequence: str) -> None:
        """Raise TrackingOutage, saying `consequence`, once the outage outlasts the window."""
        if self.expired():
            raise TrackingOutage(self.message(consequence))

    def message(self, context: str) -> str:
        return (
            f"MLflow tracking server at {self.uri} unreachable for {self.down_for:.0f} s, longer "
            f"than tracking_outage_s={self.window_s:g} ({context}); last error: {self._last_error}"
        )

    def _failed(self, action: str, error: Exception) -> None:
        self._last_error = str(error)[:300]
        if self._down_since is None:
            self._down_since = time.monotonic()
            log.warning(
                "MLflow tracking server at %s unreachable while %s; going on and trying again "
                "for up to %g s: %s",
                self.uri,
                action,
                self.window_s,
                self._last_error,
            )

    def _recovered(self) -> None:
        if self._down_since is not None:
            log.info("MLflow tracking server at %s is back after %.0f s", self.uri, self.down_for)
            self._down_since = None


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
    tags = {STEP_TAG: step}
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
