"""A train process killed mid-run resumes from its checkpoint instead of starting over."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # kills and resumes real training

EPOCHS = 30  # enough that the first process is still training when it is killed


def _checkpointed_epochs(checkpoint_dir: Path) -> int:
    try:
        return json.loads((checkpoint_dir / "state" / "training_metadata.json").read_text())[
            "epoch"
        ]
    except (OSError, ValueError, KeyError):  # not there yet, or caught mid-write
        return 0


def test_killed_training_resumes_from_the_last_checkpoint(mlflow_store, tiny_shards, tmp_path):
    from mlflow.tracking import MlflowClient

    checkpoint_dir = tmp_path / "checkpoints"
    command = [sys.executable, "-m", "components.train", "--dataset", str(tiny_shards)]
    command += ["--model-dir", str(tmp_path / "model"), "--checkpoint-dir", str(checkpoint_dir)]
    command += ["--epochs", str(EPOCHS), "--unet-width", "4", "--unet-depth", "2"]
    command += ["--batch-size", "4", "--pipeline-run-id", "preempted", "--system-metrics", "false"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    cwd = Path(__file__).resolve().parents[1]

    first = subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 120
    while _checkpointed_epochs(checkpoint_dir) < 1:
        assert first.poll() is None, first.communicate()[1].decode()[-3000:]
        assert time.monotonic() < deadline, "no checkpoint within 120 s"
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)  # preemption: no chance to clean up
    first.wait()
    done_before_kill = _checkpointed_epochs(checkpoint_dir)
    assert 1 <= done_before_kill < EPOCHS, "the first process was not stopped mid-run"

    second = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-3000:]
    assert f"resuming from checkpoint at epoch {done_before_kill + 1}" in second.stderr
    run_id = second.stdout.strip().splitlines()[-1]

    client = MlflowClient(mlflow_store)
    history = client.get_metric_history(run_id, "loss")
    steps = [m.step for m in history]
    assert sorted(set(steps)) == list(range(1, EPOCHS + 1))  # one MLflow run holds every epoch
    # finished epochs are not trained again: at most the epoch cut short is logged twice
    assert len(steps) <= EPOCHS + 1
    assert client.get_run(run_id).info.status == "FINISHED"
    assert (tmp_path / "model" / "saved_model.pb").exists()
    assert not checkpoint_dir.exists()  # removed once the model is exported
