"""Checks of a `segpipe run --containers` stopped by SIGTERM while training (the container tier:
`make test-containers` runs it and points SEGPIPE_CONTAINER_STOPPED at its workdir)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

STOPPED = Path(os.environ.get("SEGPIPE_CONTAINER_STOPPED", "/nonexistent"))
pytestmark = pytest.mark.skipif(
    "SEGPIPE_CONTAINER_STOPPED" not in os.environ, reason="container tier: make test-containers"
)


def test_the_run_ends_with_143_and_says_it_was_stopped():
    assert (STOPPED / "status").read_text().strip() == "143"
    lines = (STOPPED / "err.log").read_text().strip().splitlines()
    assert lines[-2] == "segpipe run: stopped by SIGTERM"
    assert lines[-1].startswith("  log:")


def test_no_step_container_is_left_running():
    from pipelines.local.containers import docker_client

    root = str((STOPPED / "local_outputs").resolve())
    for container in docker_client().containers.list():
        mounts = {mount.get("Source") for mount in container.attrs.get("Mounts", [])}
        assert root not in mounts, f"{container.name} ({container.image.tags}) still runs"


def test_its_mlflow_runs_are_closed_killed():
    from mlflow.tracking import MlflowClient

    from pipelines.local.containers import mlflow_server

    with mlflow_server(STOPPED / "mlflow-server") as uri:
        client = MlflowClient(uri)
        experiment_id = client.get_experiment_by_name("segpipe").experiment_id
        runs = client.search_runs([experiment_id])
    by_step = {run.data.tags.get("segpipe.step"): run.info.status for run in runs}
    assert by_step["train"] == "KILLED"
    assert by_step["pipeline"] == "KILLED"
    assert "RUNNING" not in by_step.values(), by_step
