"""Run the train step as a Kubeflow Trainer TrainJob of several workers; collect its model."""

from __future__ import annotations

import contextlib
import logging
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TextIO

from components.common.cli import config_flags
from components.common.errors import SegpipeError
from components.common.pods import MLFLOW_SECRET_OPTIONAL, MLFLOW_SECRET_REQUIRED
from components.common.settings.config import RunContext, TrainConfig
from components.train import trainjob

log = logging.getLogger(__name__)

NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
POD_MODEL_DIR = "/tmp/segpipe-model"  # inside the chief's pod; the model travels via MLflow
WATCH_TIMEOUT_S = 60  # one watch request; the next resumes where it ended
POLL_PAUSE_S = 2.0  # between looks for a (restarted) chief pod to follow
LOG_DRAIN_S = 30.0  # after the job ends, for the rest of the chief's log


class Cancelled(Exception):
    """The pipeline run was cancelled: the launcher got SIGTERM."""


class TrainJobFailed(SegpipeError, RuntimeError):
    """The TrainJob ended Failed: its workers used up their restarts."""

    reason = "trainjob-failed"


@dataclass(frozen=True)
class Workers:
    """What the workers run on: how many, their image and resources, where they may run."""

    count: int
    image: str
    cpu: str = "4"
    memory: str = "16Gi"
    accelerator: str = "nvidia.com/gpu"
    accelerators: int = 1
    node_selector: tuple[tuple[str, str], ...] = ()
    mlflow_secret: str = "segpipe-mlflow"


def worker_args(
    dataset_uri: str,
    checkpoint_dir: str,
    config: TrainConfig,
    run: RunContext,
) -> list[str]:
    """The train CLI's arguments for every worker: the training the single pod would run."""
    return [
        *("--dataset", dataset_uri, "--model-dir", POD_MODEL_DIR),
        *("--checkpoint-dir", checkpoint_dir, "--experiment", run.experiment),
        *("--pipeline-run-id", run.pipeline_run_id),
        *("--model-name", run.model_name, "--alias", run.alias),
        *config_flags(config),
    ]


def shared_location(uri: str, what: str) -> str:
    """`uri` when pods on any node can reach it (gs://); else an error saying what to set."""
    if not uri.startswith("gs://"):
        raise ValueError(
            f"train_workers > 1: the workers share {what} at {uri or '(nowhere)'}, which pods "
            "on other nodes cannot reach; it must be under gs:// (run with a gs:// pipeline "
            "root, or set checkpoint_root=gs://...)"
        )
    return uri


def train_job_manifest(
    dataset_uri: str,
    config: TrainConfig,
    workers: Workers,
    run: RunContext,
    pipeline_root: str,
) -> dict:
    """The TrainJob of one pipeline run, once it is clear its workers can share their data."""
    from components.train.checkpoints import checkpoint_dir_for

    shared_location(dataset_uri, "the data set")
    checkpoint_dir = shared_location(
        checkpoint_dir_for(config.checkpoint_root, run.pipeline_run_id, pipeline_root),
        "checkpoints",
    )
    args = worker_args(dataset_uri, checkpoint_dir, config, run)
    env = trainjob.secret_env(workers.mlflow_secret, MLFLOW_SECRET_REQUIRED, MLFLOW_SECRET_OPTIONAL)
    return trainjob.train_job(
        run.pipeline_run_id,
        image=workers.image,
        args=args,
        workers=workers.count,
        env=env,
        resources_per_node=trainjob.resources(
            workers.cpu, workers.memory, workers.accelerator, workers.accelerators
        ),
        node_selector=dict(workers.node_selector),
    )


class TrainJobs:
    """The Kubernetes calls the launcher makes, in one namespace."""

    def __init__(self, api_client, namespace: str):
        from kubernetes import client

        self.namespace = namespace
        self.custom = client.CustomObjectsApi(api_client)
        self.core = client.CoreV1Api(api_client)

    def _path(self) -> tuple[str, str, str, str]:
        return trainjob.API_GROUP, trainjob.API_VERSION, self.namespace, trainjob.PLURAL

    def create(self, manifest: dict) -> dict:
        # Strict: a Trainer release whose TrainJob lacks a field we send refuses the job,
        # instead of dropping the field and running something else
        return self.custom.create_namespaced_custom_object(
            *self._path(), manifest, field_validation="Strict"
        )

    def get(self, name: str) -> dict | None:
        from kubernetes.client.exceptions import ApiException

        try:
            return self.custom.get_namespaced_custom_object(*self._path(), name)
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def delete(self, name: str) -> None:
        from kubernetes.client.exceptions import ApiException

        try:
            self.custom.delete_namespaced_custom_object(
                *self._path(), name, propagation_policy="Foreground"
            )
        except ApiException as error:
            if error.status != 404:
                raise

    def watch(self, name: str, resource_version: str) -> Iterator[dict]:
        """The TrainJob `name` each time it changes after `resource_version`, for a while."""
        from kubernetes import watch

        stream = watch.Watch().stream(
            self.custom.list_namespaced_custom_object,
            *self._path(),
            field_selector=f"metadata.name={name}",
            resource_version=resource_version,
            timeout_seconds=WATCH_TIMEOUT_S,
        )
        for event in stream:
            if event["type"] in ("ADDED", "MODIFIED"):
                yield event["object"]

    def chief_pods(self, name: str) -> list:
        """Worker 0's pods of TrainJob `name`, oldest first (a restart makes a new one)."""
        pods = self.core.list_namespaced_pod(
            self.namespace, label_selector=trainjob.chief_pod_selector(name)
        ).items
        return sorted(pods, key=lambda pod: pod.metadata.creation_timestamp or 0)

    def follow_log(self, pod_name: str) -> Iterator[bytes]:
        response = self.core.read_namespaced_pod_log(
            pod_name, self.namespace, container=trainjob.CONTAINER, follow=True,
            _preload_content=False,
        )  # fmt: skip
        try:
            yield from response.stream(1024)
        finally:
            response.release_conn()


def start(jobs: TrainJobs, manifest: dict) -> dict:
    """Create the TrainJob, or attach to the one an earlier try of this step created.

    One that ended Failed is replaced: the retry starts its workers afresh, and they resume
    from their checkpoints.
    """
    from kubernetes.client.exceptions import ApiException

    name = manifest["metadata"]["name"]
    existing = jobs.get(name)
    if existing is not None and trainjob.condition(existing) is not None:
        kind, message = trainjob.condition(existing)
        if kind == "Complete":
            log.info("train: TrainJob %s already completed; collecting its model", name)
            return existing
        log.info("train: TrainJob %s had failed (%s); starting it again", name, message)
        jobs.delete(name)
        _wait_gone(jobs, name)
        existing = None
    if existing is not None:
        log.info("train: attaching to TrainJob %s, created by an earlier try", name)
        return existing
    try:
        created = jobs.create(manifest)
    except ApiException as error:
        if error.status != 409:  # 409: another try created it in the meantime
            raise
        created = jobs.get(name)
    log.info("train: created TrainJob %s/%s", jobs.namespace, name)
    return created


def _wait_gone(jobs: TrainJobs, name: str, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while jobs.get(name) is not None:
        if time.monotonic() > deadline:
            raise TimeoutError(f"TrainJob {name} was not deleted within {timeout_s:.0f} s")
        time.sleep(POLL_PAUSE_S)


def wait(jobs: TrainJobs, job: dict) -> tuple[str, str]:
    """Watch the TrainJob until it is Complete or Failed; returns (kind, message)."""
    name = job["metadata"]["name"]
    while True:
        if (finished := trainjob.condition(job)) is not None:
            return finished
        for changed in jobs.watch(name, job["metadata"].get("resourceVersion", "")):
            job = changed
            if (finished := trainjob.condition(job)) is not None:
                return finished
        # the watch timed out (or the server ended it): read the latest state and watch again
        job = jobs.get(name)
        if job is None:
            raise TrainJobFailed(f"TrainJob {name} was deleted before it finished")


class ChiefLog(threading.Thread):
    """Copies worker 0's log to `out` while the job runs, following it across restarts."""

    def __init__(self, jobs: TrainJobs, name: str, out: TextIO):
        super().__init__(daemon=True, name=f"log-{name}")
        self.jobs, self.job_name, self.out = jobs, name, out
        self.finished = threading.Event()
        self._seen: set[str] = set()

    def run(self) -> None:
        while True:
            last = self.finished.is_set()  # one more look once the job ended: its last pod
            try:
                self._follow_new_pods()
            except Exception as error:  # a log is worth a retry, never a failed step
                log.debug("train: chief log: %s", error)
            if last:
                return
            self.finished.wait(POLL_PAUSE_S)

    def stop(self, timeout_s: float = LOG_DRAIN_S) -> None:
        """Let it copy what the ended pods still hold, for at most `timeout_s`."""
        self.finished.set()
        if self.is_alive():
            self.join(timeout_s)

    def _follow_new_pods(self) -> None:
        for pod in self.jobs.chief_pods(self.job_name):
            uid = pod.metadata.uid
            if uid in self._seen or pod.status.phase == "Pending":
                continue
            self._seen.add(uid)
            self.out.write(f"--- worker 0: pod {pod.metadata.name} ---\n")
            for chunk in self.jobs.follow_log(pod.metadata.name):
                self.out.write(chunk.decode(errors="replace"))
                self.out.flush()


@contextlib.contextmanager
def _cancellable() -> Iterator[None]:
    """Turn SIGTERM (how Kubeflow cancels a run's pods) into Cancelled inside the block."""

    def cancel(signum, frame):
        raise Cancelled("the pipeline run was cancelled")

    previous = signal.signal(signal.SIGTERM, cancel)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_train_job(jobs: TrainJobs, manifest: dict, out: TextIO | None = None) -> None:
    """Start (or re-attach to) the TrainJob, stream worker 0's log, wait for the end.

    Fails with TrainJobFailed when the job fails; deletes it when the run is cancelled.
    """
    name = manifest["metadata"]["name"]
    chief_log = ChiefLog(jobs, name, out or sys.stdout)
    with _cancellable():
        try:
            job = start(jobs, manifest)
            chief_log.start()
            kind, message = wait(jobs, job)
        except Cancelled:
            log.warning("train: cancelled; deleting TrainJob %s and its pods", name)
            jobs.delete(name)
            raise
        finally:
            chief_log.stop()
    if kind != "Complete":
        raise TrainJobFailed(f"TrainJob {jobs.namespace}/{name} failed: {message}")
    log.info("train: TrainJob %s completed", name)


def collect_model(experiment: str, pipeline_run_id: str, model_dir: str) -> str:
    """The chief's MLflow run id; its logged model copied into `model_dir`."""
    import mlflow

    from components.common.tracking.runs import tracking_uri
    from components.common.tracking.step_runs import find_step_run_id

    run_id = find_step_run_id(experiment, pipeline_run_id, "train")
    mlflow.set_tracking_uri(tracking_uri())
    with tempfile.TemporaryDirectory() as scratch:
        downloaded = mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path="model", dst_path=scratch
        )
        shutil.copytree(downloaded, model_dir, dirs_exist_ok=True)
    return run_id


def in_cluster_namespace() -> str:
    """The namespace this pod runs in (where its TrainJobs go)."""
    with open(NAMESPACE_FILE) as handle:
        return handle.read().strip()


def launch(
    dataset_uri: str,
    model_dir: str,
    config: TrainConfig,
    workers: Workers,
    run: RunContext,
    pipeline_root: str,
    connect: Callable[[], tuple[object, str]] | None = None,
    snapshot_dir: str = "",
) -> str:
    """Train on `workers` as a TrainJob and put the model in `model_dir`; the MLflow run id.

    `connect` gives (kubernetes ApiClient, namespace); by default this pod's own.
    `snapshot_dir` (the snapshot step's output, which the pods do not see) is logged to the
    chief's run afterwards: its dataset input and lineage tags.
    """
    manifest = train_job_manifest(dataset_uri, config, workers, run, pipeline_root)
    api_client, namespace = (connect or _in_cluster)()
    run_train_job(TrainJobs(api_client, namespace), manifest)
    run_id = collect_model(run.experiment, run.pipeline_run_id, model_dir)
    if snapshot_dir:
        import mlflow

        from components.common.tracking.lineage import log_training_data

        with mlflow.start_run(run_id=run_id):
            log_training_data(snapshot_dir, context="training", model_run=True)
    return run_id


def _in_cluster() -> tuple[object, str]:
    from kubernetes import client, config

    config.load_incluster_config()
    return client.ApiClient(), in_cluster_namespace()
