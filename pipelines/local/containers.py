"""Run the pipeline with each step in its image (kfp.local's DockerRunner), tracking to a real
MLflow server on 127.0.0.1, as a cluster would run it."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from collections.abc import Iterator
from pathlib import Path

from components.common import progress
from components.common.errors import StepFailed
from components.common.settings.config import DEFAULT_EXPERIMENT, PublishConfig
from pipelines.images import Images, step_images
from pipelines.local import ui
from pipelines.local.mlflow_server import sqlite_mlflow_server
from pipelines.local.runner import (
    RunFailed,
    RunSummary,
    close_stopped_run,
    failed_run_link,
    run_reported,
    summarize,
)
from pipelines.local.termination import Terminated, sigterm_unwinds
from pipelines.pipeline import build_pipeline


@contextlib.contextmanager
def mlflow_server(root: Path) -> Iterator[str]:
    """A real `mlflow server` on 127.0.0.1 with its store under `root`; yields its URI.

    SQLite holds runs and the registry; artifacts are proxied through the server
    (`--serve-artifacts`) into `root/artifacts`, which no step mounts: as on a cluster, the steps
    reach artifacts over HTTP only. The server is stopped however the block ends (SIGTERM included).
    """
    root.mkdir(parents=True, exist_ok=True)
    with sigterm_unwinds(), sqlite_mlflow_server(root) as server:
        yield server.uri


def docker_client():
    """A client of the Docker engine at $DOCKER_HOST (or the default socket), checked by a ping."""
    try:
        import docker
    except ImportError as error:
        raise StepFailed(
            "segpipe run --containers needs the `docker` Python package: "
            "pip install 'segpipe[containers]'"
        ) from error
    where = os.environ.get("DOCKER_HOST") or "the default socket (DOCKER_HOST is unset)"
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as error:
        raise StepFailed(
            f"cannot reach a Docker engine at {where}: {error}. segpipe does not start one: "
            "start dockerd and point DOCKER_HOST at its socket"
        ) from error
    return client


def check_images(client, images: Images) -> None:
    """Refuse to start unless every step image exists locally (the run never pulls or builds)."""
    import docker

    missing = []
    for ref in (images.beam, images.trainer, images.runtime):
        try:
            client.images.get(ref)
        except docker.errors.ImageNotFound:
            missing.append(ref)
    if missing:
        raise StepFailed(
            f"step images not found on the Docker engine: {', '.join(missing)}. Build them with "
            "`make images` (TAG=... for another tag, and --tag the same here)"
        )


def stop_step_containers(pipeline_root: Path, grace_s: int = 10) -> list[str]:
    """Stop the running containers that mount `pipeline_root`: this run's steps. kfp.local
    starts them detached, so they outlive a stopped run. Returns their ids."""
    stopped = []
    root = str(pipeline_root)
    for container in docker_client().containers.list():
        if any(mount.get("Source") == root for mount in container.attrs.get("Mounts", [])):
            container.stop(timeout=grace_s)  # SIGTERM, then SIGKILL; auto-removed
            stopped.append(container.id)
    return stopped


def check_ready(tag: str | None = None) -> Images:
    """The step images, once the Docker engine answers and holds all three (else RuntimeError)."""
    images = step_images(tag=tag)
    client = docker_client()
    try:
        check_images(client, images)
    finally:
        client.close()
    return images


def writable_by_steps(path: Path) -> Path:
    """Create `path` and let the steps' user (uid 10001, not the caller) create files in it."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o777)
    return path


def _bind(path: str, read_only: bool):
    from docker.types import Mount

    return Mount(target=path, source=path, type="bind", read_only=read_only)


def run_in_containers(
    params: dict[str, object], workdir: Path, tag: str | None = None, verbose: bool = False
) -> RunSummary:
    """Run the whole pipeline, each step in its image as uid 10001 with host networking."""
    from kfp import local

    images = check_ready(tag)
    params = dict(params)
    workdir = workdir.resolve()
    pipeline_root = writable_by_steps(workdir / "local_outputs")
    # Steps see only these host paths, each at its own path: the data (read-only), the pipeline
    # root (kfp.local mounts it) and a local export root.
    mounts = []
    data_dir = str(params["data_dir"])
    if "://" not in data_dir:
        mounts.append(_bind(str(Path(data_dir).resolve()), read_only=True))
    export_root = str(params.setdefault("export_root", str(workdir / "exports")))
    if "://" not in export_root:
        export_root = str(writable_by_steps(Path(export_root).resolve()))
        params["export_root"] = export_root
        mounts.append(_bind(export_root, read_only=False))
    server_root = workdir / "mlflow-server"
    with mlflow_server(server_root) as uri:
        local.init(
            runner=local.DockerRunner(
                network_mode="host",  # the server is on 127.0.0.1; no bridge networks
                entrypoint=[],  # as Kubernetes' `command`: replaces the image's (Beam's boot)
                environment={"MLFLOW_TRACKING_URI": uri, progress.ENV: "1"},
                mounts=mounts,
            ),
            pipeline_root=str(pipeline_root),
            raise_on_error=True,
        )
        started, began_s = time.monotonic(), time.time()
        experiment = str(params.get("experiment", DEFAULT_EXPERIMENT))
        pipeline = build_pipeline(images)
        # The server stops with this run: its store is browsed afterwards with `segpipe ui`,
        # so the links point there.
        store = f"sqlite:///{server_root / 'mlflow.db'}"
        local_ui = ui.ui_url(store)
        try:
            outputs, log_path = run_reported(
                lambda: pipeline(**params).outputs, pipeline_root, params, verbose
            )
        except RunFailed as failed:
            failed.link = failed_run_link(uri, experiment, began_s, local_ui)
            raise
        except Terminated:  # before the server stops: the steps' runs are closed through it
            stop_step_containers(pipeline_root)
            close_stopped_run(uri, experiment, began_s)
            raise
        model_name = str(params.get("model_name", PublishConfig.model_name))
        browse = ui.browse_hint(store, server_root / "artifacts")
        summary = summarize(uri, model_name, outputs, browse, local_ui)
        return dataclasses.replace(
            summary, log_path=str(log_path), took_s=time.monotonic() - started
        )
