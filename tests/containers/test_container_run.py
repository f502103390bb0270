"""Checks of a finished `segpipe run --containers` (the container tier: `make test-containers`,
which runs the pipeline and points SEGPIPE_CONTAINER_RUN at its workdir)."""

from __future__ import annotations

import os
import re
from importlib.metadata import version
from pathlib import Path

import pytest

RUN = Path(os.environ.get("SEGPIPE_CONTAINER_RUN", "/nonexistent"))
pytestmark = pytest.mark.skipif(
    "SEGPIPE_CONTAINER_RUN" not in os.environ, reason="container tier: make test-containers"
)
MODEL = "segpipe-unet"
STEP_UID = 10001
STEP_IMAGES = {"snapshot": "beam", "preprocess": "beam", "train": "trainer", "evaluate": "trainer"}
STEP_IMAGES["publish"] = "runtime"


@pytest.fixture(scope="module")
def summary() -> dict[str, str]:
    """The `key: value` lines of the run's closing summary."""
    text = (RUN / "summary.log").read_text()
    assert "segpipe run finished" in text
    return dict(re.findall(r"^  ([a-zA-Z ]+):\s+(.*)$", text, re.MULTILINE))


@pytest.fixture(scope="module")
def client():
    """A client of the run's MLflow store, served again by a server on 127.0.0.1."""
    from mlflow.tracking import MlflowClient

    from pipelines.local.containers import mlflow_server

    with mlflow_server(RUN / "mlflow-server") as uri:
        yield MlflowClient(uri)


@pytest.fixture(scope="module")
def step_runs(client, summary) -> dict[str, object]:
    """The MLflow runs of this pipeline run's steps, by step name."""
    # the pipeline's parent run, as a UI link (a server serves the store)
    parent = client.get_run(re.search(r"/runs/([0-9a-f]{32})", summary["MLflow run"]).group(1))
    assert parent.data.tags["segpipe.step"] == "pipeline"
    train = client.get_run(parent.data.tags["segpipe.train_run_id"])
    pipeline_run_id = train.data.tags["segpipe.pipeline_run_id"]
    runs = client.search_runs(
        [train.info.experiment_id], f"tags.`segpipe.pipeline_run_id` = '{pipeline_run_id}'"
    )
    by_step = {run.data.tags["segpipe.step"]: run for run in runs}
    by_step["preprocess"] = client.get_run(train.data.tags["segpipe.preprocess_run_id"])
    return by_step


def test_the_gate_passed_and_a_version_was_registered(summary, step_runs):
    assert summary["gate"].startswith("PASSED"), summary["gate"]
    assert summary["registered"].startswith("version "), summary["registered"]
    assert step_runs["evaluate"].data.tags["gate.passed"] == "true"


def test_champion_alias_points_at_the_new_version_and_its_export_is_complete(client, summary):
    champion = client.get_model_version_by_alias(MODEL, "champion")
    assert summary["registered"] == f"version {champion.version}"
    export = RUN / "exports" / MODEL / str(champion.version)
    assert (export / "_SUCCESS").is_file()
    assert (export / "saved_model.pb").is_file() or any(export.rglob("saved_model.pb"))
    assert (export / "MODEL_CARD.md").is_file()


def test_every_step_ran_as_uid_10001_inside_its_own_image(step_runs):
    tag = version("segpipe")
    for step, kind in STEP_IMAGES.items():
        tags = step_runs[step].data.tags
        ran = (tags.get("segpipe.uid"), tags.get("segpipe.image"))
        assert ran == (str(STEP_UID), f"segpipe-{kind}:{tag}"), (step, ran)


def test_outputs_under_the_pipeline_root_were_written_by_uid_10001(summary):
    host_log = Path(summary["log"])  # segpipe run's own log, written on the host
    assert host_log.is_file(), host_log
    outputs = [path for path in (RUN / "local_outputs").rglob("*") if path != host_log]
    assert outputs, "nothing under the pipeline root"
    owners = {path.lstat().st_uid for path in outputs}
    assert owners == {STEP_UID}, owners


def test_artifacts_went_through_the_server_not_a_shared_path(step_runs):
    train = step_runs["train"]
    assert train.info.artifact_uri.startswith("mlflow-artifacts:"), train.info.artifact_uri
    stored = RUN / "mlflow-server" / "artifacts"
    assert any(stored.rglob("*")), "the server's artifact store is empty"
    # written by the server (this process's user), not by a step's uid 10001
    assert {path.lstat().st_uid for path in stored.rglob("*")} == {os.getuid()}


def test_no_mlflow_server_of_the_run_is_left_running():
    store = str(RUN / "mlflow-server")
    for process in Path("/proc").glob("[0-9]*"):
        try:
            command = (process / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            parent = int((process / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
        if parent != os.getpid() and "mlflow" in command and store in command:  # not `client`'s
            pytest.fail(f"still running: pid {process.name}: {command}")
