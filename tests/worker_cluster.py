"""Start one command as several TensorFlow workers on 127.0.0.1, each with its own TF_CONFIG."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

from pipelines.local.mlflow_server import free_port

REPO = Path(__file__).resolve().parents[1]


def tf_configs(count: int) -> list[str]:
    """A worker-only cluster of `count` tasks on free loopback ports; worker 0 is the chief."""
    workers = [f"127.0.0.1:{free_port()}" for _ in range(count)]
    return [
        json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})
        for index in range(count)
    ]


def start_workers(
    commands: list[list[str]], log_dir: Path, env: dict[str, str] | None = None
) -> list[subprocess.Popen]:
    """`commands[i]` as worker i, stdout to log_dir/worker-i.out and stderr to worker-i.err."""
    log_dir.mkdir(parents=True, exist_ok=True)
    processes = []
    for index, (command, tf_config) in enumerate(
        zip(commands, tf_configs(len(commands)), strict=True)
    ):
        worker_env = {
            **os.environ,
            **(env or {}),
            # this checkout's code, whichever one the environment has installed
            "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
            "TF_CONFIG": tf_config,
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "CUDA_VISIBLE_DEVICES": "",  # CPU workers, as on a machine without accelerators
        }
        with (
            open(log_dir / f"worker-{index}.out", "w") as out,
            open(log_dir / f"worker-{index}.err", "w") as err,
        ):
            processes.append(
                subprocess.Popen(command, cwd=REPO, env=worker_env, stdout=out, stderr=err)
            )
    return processes


def wait_all(processes: list[subprocess.Popen], timeout_s: float) -> list[int]:
    """Exit codes, killing every worker still running after `timeout_s` (then an error)."""
    deadline = time.monotonic() + timeout_s
    try:
        return [process.wait(timeout=max(0, deadline - time.monotonic())) for process in processes]
    except subprocess.TimeoutExpired:
        for process in processes:
            process.kill()
        raise
