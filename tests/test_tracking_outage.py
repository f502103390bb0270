"""Training through an MLflow outage: a real `mlflow server` killed mid-run and restarted."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow_stores import copy_store

from pipelines.local.mlflow_server import MlflowServer

MLFLOW = Path(sys.executable).parent / "mlflow"
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mlflow_db_template: Path):
    root = tmp_path / "mlflow-server"
    copy_store(mlflow_db_template, root / "db.sqlite")
    store = f"sqlite:///{root / 'db.sqlite'}"
    server = MlflowServer(store, root / "server.log", root / "artifacts").start()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.uri)
    try:
        yield server
    finally:
        server.kill()


def _train_command(shards: Path, tmp_path: Path, epochs: int, outage_s: int) -> list[str]:
    command = [sys.executable, "-m", "components.train", "--dataset", str(shards)]
    command += ["--model-dir", str(tmp_path / "model")]
    command += ["--checkpoint-dir", str(tmp_path / "checkpoints")]
    command += ["--epochs", str(epochs), "--unet-width", "4", "--unet-depth", "2"]
    command += ["--batch-size", "4", "--pipeline-run-id", "outage"]
    command += ["--tracking-outage-s", str(outage_s)]
    return command


def _start_training(command: list[str], tmp_path: Path) -> subprocess.Popen:
    # system metrics on, sampled every second: their thread meets the outage too
    env = {**os.environ, "MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL": "1"}
    stderr = open(tmp_path / "train.log", "w")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=stderr)


def _checkpointed_epochs(checkpoint_dir: Path) -> int:
    try:
        return json.loads((checkpoint_dir / "state" / "training_metadata.json").read_text())[
            "epoch"
        ]
    except (OSError, ValueError, KeyError):  # not there yet, or caught mid-write
        return 0


def _wait_for_epochs(process, checkpoint_dir: Path, epochs: int, timeout_s: float) -> int:
    """Wait until `epochs` are checkpointed (or the process ends); the count reached."""
    deadline = time.monotonic() + timeout_s
    while (done := _checkpointed_epochs(checkpoint_dir)) < epochs and process.poll() is None:
        assert time.monotonic() < deadline, f"only {done} epochs within {timeout_s} s"
        time.sleep(0.05)
    return done


def _runs(uri: str):
    """(train run, pipeline parent run) of the pipeline run id "outage"."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("segpipe").experiment_id
    found = client.search_runs([experiment], "tags.`segpipe.pipeline_run_id` = 'outage'")
    steps = {run.data.tags["segpipe.step"]: run for run in found}
    return steps["train"], steps["pipeline"]


def _logged_steps(uri: str, run_id: str, key: str) -> list[int]:
    from mlflow.tracking import MlflowClient

    return sorted(m.step for m in MlflowClient(uri).get_metric_history(run_id, key))


def _dead_uri() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"  # nothing listens there


@pytest.mark.slow  # waits out real retry windows and client timeouts
def test_calls_to_a_dead_server_are_retried_for_the_window_then_refused():
    from mlflow.tracking import MlflowClient

    from components.common.tracking.outage import OutageWindow, TrackingOutage, bounded_requests

    uri = _dead_uri()
    outage = OutageWindow(3, uri)
    start = time.monotonic()
    with bounded_requests(timeout_s=5), pytest.raises(TrackingOutage) as refused:
        outage.retry("reading a run", lambda: MlflowClient(uri).get_run("0" * 32))
    took = time.monotonic() - start
    assert 3 < took < 30  # tried for the window, not MLflow's 12 minutes
    assert f"MLflow tracking server at {uri} unreachable for" in str(refused.value)
    assert "longer than tracking_outage_s=3 (reading a run)" in str(refused.value)


@pytest.mark.slow  # waits out real retry windows and client timeouts
def test_while_the_server_is_down_a_try_costs_a_connect_and_other_errors_pass_through():
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST
    from mlflow.tracking import MlflowClient

    from components.common.tracking.outage import OutageWindow, bounded_requests, is_outage

    uri = _dead_uri()
    outage = OutageWindow(60, uri)
    with bounded_requests(timeout_s=5):
        assert not outage.attempt("logging", lambda: MlflowClient(uri).get_run("0" * 32))
    calls = []
    start = time.monotonic()
    assert not outage.attempt("logging", lambda: calls.append(1))
    assert calls == [] and time.monotonic() - start < 3  # the probe failed: no MLflow call
    assert not outage.expired()
    with pytest.raises(KeyError):  # not an outage: raised at once
        OutageWindow(60, uri).retry("logging", lambda: {}["missing"])
    assert not is_outage(MlflowException("no such run", RESOURCE_DOES_NOT_EXIST))
    assert is_outage(MlflowException("API request to ... failed with exception ..."))


@pytest.mark.slow
def test_training_goes_on_through_a_short_outage_and_logs_every_epoch(
    server, tiny_shards, tmp_path
):
    epochs = 15
    checkpoint_dir = tmp_path / "checkpoints"
    training = _start_training(_train_command(tiny_shards, tmp_path, epochs, 240), tmp_path)
    try:
        _wait_for_epochs(training, checkpoint_dir, 2, 180)
        server.kill()
        done_at_kill = _checkpointed_epochs(checkpoint_dir)
        assert training.poll() is None and done_at_kill <= epochs - 2, "too late for an outage"
        # training goes on while the server is down
        went_on_to = _wait_for_epochs(training, checkpoint_dir, done_at_kill + 2, 120)
        assert went_on_to >= done_at_kill + 2
        server.start()  # same port, same store
        training.wait(timeout=240)
    finally:
        training.kill()
    log = (tmp_path / "train.log").read_text()
    assert training.returncode == 0, log[-3000:]
    assert "unreachable while logging metrics" in log and "is back after" in log

    train_run, parent = _runs(server.uri)
    run_id = train_run.info.run_id
    assert training.stdout.read().decode().split()[-1] == run_id
    for key in ("loss", "train_mean_iou", "val_loss", "val_mean_iou"):
        assert _logged_steps(server.uri, run_id, key) == list(range(1, epochs + 1)), key
    assert train_run.info.status == "FINISHED" and parent.info.status == "FINISHED"
    assert (tmp_path / "model" / "saved_model.pb").exists()
    assert not checkpoint_dir.exists()


@pytest.mark.slow
def test_an_outage_longer_than_the_window_fails_after_a_checkpoint_and_the_retry_catches_up(
    server, tiny_shards, tmp_path
):
    epochs = 30  # more than the window lets the first attempt finish
    checkpoint_dir = tmp_path / "checkpoints"
    command = _train_command(tiny_shards, tmp_path, epochs, 4)
    training = _start_training(command, tmp_path)
    try:
        _wait_for_epochs(training, checkpoint_dir, 1, 180)
        assert training.poll() is None, "finished before the outage"
        server.kill()
        killed = time.monotonic()
        training.wait(timeout=120)
        took = time.monotonic() - killed
    finally:
        training.kill()
    log = (tmp_path / "train.log").read_text()
    assert training.returncode != 0
    assert f"MLflow tracking server at {server.uri} unreachable for" in log
    assert "longer than tracking_outage_s=4" in log
    done = _checkpointed_epochs(checkpoint_dir)
    assert f"training stopped after epoch {done}, checkpointed" in log, log[-3000:]
    assert 1 <= done < epochs
    assert took < 90  # the window, a few epochs and short tries; not MLflow's 12 minutes
    kept = json.loads((checkpoint_dir / "pending_metrics.json").read_text())
    kept_steps = {m["step"] for m in kept["metrics"] if m["key"] == "loss"}
    assert kept_steps and max(kept_steps) == done  # the epochs logged nowhere yet

    server.start()
    train_run, parent = _runs(server.uri)
    run_id = train_run.info.run_id
    # no epoch lost: each one reached the server or waits in the file. Metrics are sent by a
    # thread of their own, so one in flight when the server died can be in both (its reply
    # was lost); the retry logs it again and the server stores it once (checked below)
    logged_before = set(_logged_steps(server.uri, run_id, "loss"))
    assert set(range(1, done + 1)) <= kept_steps | logged_before

    # the task's retry: resumes after the checkpoint and logs what the first attempt kept
    second = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-3000:]
    assert f"resuming from checkpoint at epoch {done + 1}" in second.stderr
    for key in ("loss", "val_mean_iou"):
        assert _logged_steps(server.uri, run_id, key) == list(range(1, epochs + 1)), key
    train_run, parent = _runs(server.uri)
    assert train_run.info.status == "FINISHED" and parent.info.status == "FINISHED"
    assert not checkpoint_dir.exists()


@pytest.mark.slow
def test_a_failing_train_step_leaves_its_runs_failed(server, tiny_shards, tmp_path):
    """Where the server answers, an error marks the step's run and the pipeline run FAILED."""
    import shutil

    from components.common.settings.config import RunContext, TrainConfig
    from components.train.trainer import train

    broken = tmp_path / "no-shards"
    broken.mkdir()
    for name in ("dataset.json", "stats.json"):  # metadata, but the shards are gone
        shutil.copy(tiny_shards / name, broken / name)
    with pytest.raises(FileNotFoundError, match="no TFRecord shards"):
        train(
            str(broken),
            str(tmp_path / "model"),
            TrainConfig(epochs=1),
            RunContext("segpipe", "outage"),
        )
    train_run, parent = _runs(server.uri)
    assert train_run.info.status == "FAILED" and parent.info.status == "FAILED"


def _epoch_times(process, checkpoint_dir: Path, epochs: int, timeout_s: float) -> list[float]:
    """When each of `epochs` more epochs was checkpointed (monotonic seconds)."""
    times, done = [], _checkpointed_epochs(checkpoint_dir)
    for target in range(done + 1, done + epochs + 1):
        _wait_for_epochs(process, checkpoint_dir, target, timeout_s)
        times.append(time.monotonic())
    return times


@pytest.mark.slow
def test_a_hung_server_never_holds_up_an_epoch_and_the_run_ends_within_the_window(
    server, tiny_shards, tmp_path
):
    """SIGSTOP on a real `mlflow server`: it accepts connections and never replies. Epochs go on
    at the healthy pace (metrics wait in a thread of their own), and the task fails once the
    server has not answered for tracking_outage_s, plus at most a request timeout or two."""
    window, epochs = 20, 9
    checkpoint_dir = tmp_path / "checkpoints"
    training = _start_training(_train_command(tiny_shards, tmp_path, epochs, window), tmp_path)
    try:
        healthy = _epoch_times(training, checkpoint_dir, 4, 180)
        server.freeze()
        frozen_at = time.monotonic()
        frozen = _epoch_times(training, checkpoint_dir, epochs - 4, 120)
        training.wait(timeout=window + 90)
        ended = time.monotonic() - frozen_at
    finally:
        server.kill()
        training.kill()
    log = (tmp_path / "train.log").read_text()
    healthy_epoch = (healthy[-1] - healthy[0]) / (len(healthy) - 1)
    frozen_epoch = (frozen[-1] - frozen_at) / len(frozen)
    print(
        f"\nepoch: {healthy_epoch:.2f} s healthy, {frozen_epoch:.2f} s frozen; "
        f"ended {ended:.1f} s after the freeze (tracking_outage_s={window})"
    )
    # before: each epoch waited out a request timeout and its retries (5 s x 3 here)
    assert frozen_epoch < 3 * healthy_epoch + 1.0, (healthy_epoch, frozen_epoch)
    assert training.returncode != 0
    assert f"longer than tracking_outage_s={window}" in log, log[-3000:]
    assert window < ended < window + 15, ended  # the window, a request timeout, marking FAILED
    kept = json.loads((checkpoint_dir / "pending_metrics.json").read_text())
    assert max(m["step"] for m in kept["metrics"] if m["key"] == "loss") == epochs
