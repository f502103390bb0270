"""Two training workers on 127.0.0.1: in step, outputs from the chief only, resumable together."""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

import pytest
from worker_cluster import start_workers, wait_all

EPOCH_LINE = re.compile(r"- loss: (\S+) - mean_iou: (\S+) - val_loss: (\S+) - val_mean_iou: (\S+)")
KILL_TO_FAILURE_LIMIT_S = 120  # a hang shows as this; the heartbeat timeout is 10 s


def _command(shards: Path, tmp_path: Path, worker: int, epochs: int) -> list[str]:
    """The train CLI as each pod of a TrainJob runs it; model folders differ only to tell
    whose output is whose (on a cluster all workers get the same one)."""
    command = [sys.executable, "-m", "components.train", "--dataset", str(shards)]
    command += ["--model-dir", str(tmp_path / f"model-{worker}")]
    command += ["--checkpoint-dir", str(tmp_path / "checkpoints"), "--epochs", str(epochs)]
    command += ["--unet-width", "4", "--unet-depth", "2", "--batch-size", "4"]
    command += ["--pipeline-run-id", "two-workers", "--system-metrics", "false"]
    return command


def _epoch_metrics(log: Path) -> list[tuple[str, ...]]:
    return EPOCH_LINE.findall(log.read_text())


def _train_runs(tracking_uri: str):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("segpipe")
    return client, client.search_runs(
        [experiment.experiment_id], filter_string="tags.`segpipe.step` = 'train'"
    )


def _checkpointed_epoch(state_dir: Path) -> int:
    try:
        return json.loads((state_dir / "training_metadata.json").read_text())["epoch"]
    except (OSError, ValueError, KeyError):  # not written yet, or caught mid-write
        return 0


@pytest.mark.slow  # worker processes train
def test_two_workers_train_in_step_and_only_the_chief_writes(mlflow_store, tiny_shards, tmp_path):
    epochs = 2
    logs = tmp_path / "logs"
    commands = [_command(tiny_shards, tmp_path, worker, epochs) for worker in (0, 1)]
    started = time.monotonic()
    assert wait_all(start_workers(commands, logs), 300) == [0, 0], (
        logs / "worker-0.err"
    ).read_text()[-3000:] + (logs / "worker-1.err").read_text()[-3000:]
    print(f"two workers, {epochs} epochs: {time.monotonic() - started:.1f} s wall")

    chief, worker = _epoch_metrics(logs / "worker-0.out"), _epoch_metrics(logs / "worker-1.out")
    assert len(chief) == epochs and chief == worker  # the same losses and metrics, epoch by epoch

    client, runs = _train_runs(mlflow_store)
    assert len(runs) == 1  # the chief's; the worker never opened one
    run = runs[0]
    assert (logs / "worker-0.out").read_text().split()[-1] == run.info.run_id
    assert run.data.tags["segpipe.workers"] == "2"
    assert run.data.tags["segpipe.strategy"] == "ShimmedMultiWorkerStrategy"
    history = client.get_metric_history(run.info.run_id, "loss")
    assert [f"{m.value:.4f}" for m in history] == [line[0] for line in chief]
    assert (tmp_path / "model-0" / "saved_model.pb").exists()
    assert not (tmp_path / "model-1").exists()  # the worker exports nothing
    assert client.list_artifacts(run.info.run_id, "model")
    assert not (tmp_path / "checkpoints").exists()  # removed by the chief after the barrier
    assert "all 2 workers reached the end of training" in (logs / "worker-1.err").read_text()


@pytest.mark.slow  # worker processes train
def test_a_killed_worker_fails_the_other_and_both_resume_from_the_backup(
    mlflow_store, tiny_shards, tmp_path
):
    epochs = 8
    commands = [_command(tiny_shards, tmp_path, worker, epochs) for worker in (0, 1)]
    first = start_workers(commands, tmp_path / "first")
    chief_state = tmp_path / "checkpoints" / "state"
    worker_state = tmp_path / "checkpoints" / "state-worker-1"
    deadline = time.monotonic() + 240
    # kill right after both saved the same epoch: not while one of them writes the next
    while not 1 <= _checkpointed_epoch(chief_state) == _checkpointed_epoch(worker_state):
        assert all(p.poll() is None for p in first), (tmp_path / "first/worker-0.err").read_text()
        assert time.monotonic() < deadline, "no checkpoint within 240 s"
        time.sleep(0.05)
    first[1].kill()  # the worker's node is gone: no chance to clean up
    killed = time.monotonic()
    done = _checkpointed_epoch(chief_state)
    assert done < epochs, "the workers finished before the kill"

    chief_code = first[0].wait(timeout=KILL_TO_FAILURE_LIMIT_S)  # not a hang
    print(f"chief failed {time.monotonic() - killed:.1f} s after the worker was killed")
    assert chief_code != 0
    assert "UnavailableError" in (tmp_path / "first/worker-0.err").read_text()

    second = start_workers(commands, tmp_path / "second")  # the job restarts every worker
    assert wait_all(second, 300) == [0, 0], (tmp_path / "second/worker-0.err").read_text()[-3000:]
    for index in (0, 1):
        log = (tmp_path / "second" / f"worker-{index}.err").read_text()
        assert f"resuming from checkpoint at epoch {done + 1}" in log
    chief = _epoch_metrics(tmp_path / "second/worker-0.out")
    assert len(chief) == epochs - done and chief == _epoch_metrics(tmp_path / "second/worker-1.out")

    client, runs = _train_runs(mlflow_store)
    assert len(runs) == 1  # the resumed chief logs into the first attempt's run
    steps = [m.step for m in client.get_metric_history(runs[0].info.run_id, "loss")]
    assert sorted(set(steps)) == list(range(1, epochs + 1)) and len(steps) <= epochs + 1
    assert runs[0].info.status == "FINISHED"
    assert (tmp_path / "model-0" / "saved_model.pb").exists()
    assert not (tmp_path / "model-1").exists()
    assert not (tmp_path / "checkpoints").exists()


@pytest.mark.slow  # worker processes train
def test_workers_that_restored_different_epochs_fail_together_saying_what_to_fix(
    mlflow_store, tiny_shards, tmp_path
):
    # the chief's copy says epoch 1 was saved, the worker's has none: as after a worker was
    # killed while writing its own
    chief_state = tmp_path / "checkpoints" / "state"
    chief_state.mkdir(parents=True)
    (chief_state / "training_metadata.json").write_text('{"epoch": 1, "batch": 0}')
    commands = [_command(tiny_shards, tmp_path, worker, 2) for worker in (0, 1)]
    assert wait_all(start_workers(commands, tmp_path / "logs"), 300) == [1, 1]
    for index in (0, 1):
        log = (tmp_path / "logs" / f"worker-{index}.err").read_text()
        assert "the 2 workers restored different epochs" in log
        assert "Copy the chief's folder (state) over every state-worker-N folder" in log
    assert not (tmp_path / "model-0").exists()


def test_several_workers_without_a_shared_pipeline_run_id_are_refused(monkeypatch, capsys):
    import pytest
    from worker_cluster import tf_configs

    from components.train.__main__ import main

    monkeypatch.setenv("TF_CONFIG", tf_configs(2)[0])
    with pytest.raises(SystemExit):
        main(["--dataset", "d", "--model-dir", "m"])
    assert "need one --pipeline-run-id shared by all" in capsys.readouterr().err
