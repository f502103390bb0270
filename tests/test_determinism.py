"""deterministic=true: two trainings with one seed, run side by side, give identical metrics."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
KEYS = ("loss", "train_mean_iou", "val_loss", "val_mean_iou")


def _start(shards: Path, folder: Path, deterministic: bool) -> subprocess.Popen:
    folder.mkdir()
    command = [sys.executable, "-m", "components.train", "--dataset", str(shards)]
    command += ["--model-dir", str(folder / "model"), "--epochs", "3", "--batch-size", "4"]
    command += ["--unet-width", "8", "--unet-depth", "2", "--seed", "5"]
    command += ["--scale-min", "0.75", "--scale-max", "1.5", "--color-jitter", "0.2"]
    command += ["--system-metrics", "false", "--deterministic", str(deterministic).lower()]
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{folder / 'mlflow.db'}"}
    return subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _metrics(folder: Path, run_id: str) -> dict[str, list[float]]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    return {
        key: [m.value for m in sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)]
        for key in KEYS
    }


def _side_by_side(shards: Path, tmp_path: Path, deterministic: bool) -> list[dict]:
    folders = [tmp_path / f"{deterministic}-{n}" for n in (1, 2)]
    runs = [_start(shards, folder, deterministic) for folder in folders]
    results = []
    for folder, run in zip(folders, runs, strict=True):
        out, err = run.communicate(timeout=600)
        assert run.returncode == 0, err[-3000:]
        results.append(_metrics(folder, out.split()[-1]))
    return results


@pytest.mark.slow  # two trainings at once, twice
def test_two_deterministic_runs_side_by_side_give_identical_metrics(tiny_shards, tmp_path):
    first, second = _side_by_side(tiny_shards, tmp_path, deterministic=True)
    assert all(len(first[key]) == 3 for key in KEYS)
    assert first == second
