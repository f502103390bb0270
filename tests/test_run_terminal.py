"""`segpipe run` in a terminal, end to end: a few lines, the reason of a failure last, a log."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from pty_terminal import drawn_lines, run_in_pty

pytestmark = pytest.mark.slow  # segpipe run end to end (kfp.local)

STEP_LINE = re.compile(r"^\d\d:\d\d:\d\d  (?P<step>\S+)\s+(?P<status>.*)$")


def _step_lines(output: str) -> list[tuple[str, str]]:
    return [(m["step"], m["status"]) for m in map(STEP_LINE.match, output.splitlines()) if m]


def test_a_run_shows_a_line_per_step_and_a_summary_and_logs_the_rest(local_runs):
    _, _, (first, second) = local_runs
    assert len(first.splitlines()) < 30  # kfp.local alone prints hundreds
    assert "Executing task" not in first and "executor_input" not in first
    steps = _step_lines(first)
    done = {step: status for step, status in steps if status.startswith("done in")}
    assert set(done) == {"snapshot", "preprocess", "train", "evaluate", "publish", "finish"}
    assert done["snapshot"].endswith("24 inputs, 0 ignored; no champion")
    assert re.search(r"24 inputs, 0 rejected, 0 ignored; \d+ train, \d+ val", done["preprocess"])
    assert re.search(r"2 epochs, best val mean IoU 0\.\d{4}$", done["train"])
    assert re.search(r"mean IoU 0\.\d{4}; gate PASSED: mean IoU", done["evaluate"])
    assert done["publish"].endswith("segpipe-unet version 1 is champion")
    assert [status for step, status in steps if step == "train"][1].startswith("[")  # the bar
    assert ("publish", "skipped  the gate did not pass") in _step_lines(second)
    second_done = {s: status for s, status in _step_lines(second) if status.startswith("done")}
    assert second_done["snapshot"].endswith("24 inputs, 0 ignored; 0 added, 0 removed, 0 changed")

    (log_line,) = [line for line in first.splitlines() if line.startswith("  log:")]
    log = Path(log_line.split(":", 1)[1].strip())
    assert log.name == "segpipe.log" and (log.parent / "evaluate").is_dir()  # the run's folder
    text = log.read_text()
    assert "Executing task" in text and "Got executor_input" in text
    assert "/#/experiments/" in first and "workflowType=machine_learning" in first
    (table,) = [line for line in first.splitlines() if line.startswith("  all runs:")]
    assert "viewStateShareKey=segpipe" in table and "workflowType=machine_learning" in table
    (model,) = [line for line in first.splitlines() if line.startswith("  model:")]
    assert model.endswith("/#/models/segpipe-unet/versions/1?workflowType=machine_learning")
    assert "  model:" not in second  # nothing registered
    (browse,) = [line for line in first.splitlines() if line.startswith("  browse:")]
    assert browse.split()[1:4] == ["segpipe", "ui", "--store"]  # works from any folder
    assert browse.split()[4].startswith("sqlite:////")  # the store, by its absolute path


def test_in_an_80_column_terminal_each_line_fits_and_the_bar_is_redrawn_in_place(
    tiny_data, tmp_path
):
    env = dict(os.environ, MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}")
    command = [str(Path(sys.executable).parent / "segpipe"), "run", "--data", str(tiny_data)]
    command += ["--workdir", str(tmp_path)]
    for param in (
        "image_height=32",
        "image_width=32",
        "epochs=4",
        "unet_width=4",
        "val_fraction=0.4",
    ):
        command += ["--param", param]
    status, output = run_in_pty(command, columns=80, env=env)
    assert status == 0, output
    steps, summary = output.split("segpipe run finished")
    drawn = drawn_lines(steps)
    assert max(len(line.rstrip()) for line in drawn) < 80, max(drawn, key=len)
    bars = [line for line in drawn if "/4 epochs" in line]
    assert len(bars) >= 4 and "4/4 epochs" in bars[-1]
    # drawn over each other: no line ends between the first drawing and the train step's end
    assert "\n" not in steps[steps.index(bars[0]) : steps.index("done in", steps.index(bars[0]))]
    assert "  all runs:" in summary


@pytest.fixture(scope="module")
def rejecting_data(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tiny_data with 6 of its 24 masks gone: preprocess rejects too many inputs."""
    data = tmp_path_factory.mktemp("rejecting") / "data"
    shutil.copytree(tiny_data, data)
    for mask in sorted((data / "masks").iterdir())[:6]:
        mask.unlink()
    return data


def _segpipe_run(data: Path, workdir: Path, *extra: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, MLFLOW_TRACKING_URI=f"sqlite:///{workdir / 'mlflow.db'}")
    command = [str(Path(sys.executable).parent / "segpipe"), "run", "--data", str(data)]
    command += ["--workdir", str(workdir), "--param", "image_height=32"]
    command += ["--param", "image_width=32", *extra]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("verbose", [False, True])
def test_a_failed_run_ends_with_the_step_its_reason_and_the_log(rejecting_data, tmp_path, verbose):
    result = _segpipe_run(rejecting_data, tmp_path, *(["--verbose"] if verbose else []))

    assert result.returncode == 1
    *_, failed, mlflow_line, log_line = result.stderr.rstrip("\n").splitlines()
    assert failed.startswith("segpipe run: preprocess failed: 6 of 24 inputs rejected (25.0%")
    # the failed run's parent run in the UI, as `segpipe ui --workdir` serves it
    assert re.fullmatch(
        r"  MLflow run: http://127\.0\.0\.1:5000/#/experiments/\d+/runs/\w{32}\?workflowType="
        r"machine_learning",
        mlflow_line,
    )
    rejects = Path(re.search(r"details in (\S+rejects\.jsonl)", failed)[1])
    assert len(rejects.read_text().splitlines()) == 6
    log = Path(log_line.removeprefix("  log:").strip())
    assert "Traceback" in log.read_text()  # the whole story is in the log ...
    if verbose:  # ... and, asked for, on the terminal as it happens
        assert "Executing task" in result.stdout
    else:
        assert "Traceback" not in result.stdout + result.stderr
        steps = _step_lines(result.stdout)
        assert steps[0] == ("snapshot", "started") and steps[1][0] == "snapshot"
        assert steps[2] == ("preprocess", "started")
        assert steps[3][1].startswith("FAILED after") and "rejects.jsonl" in steps[3][1]
        assert ("train", "skipped  an earlier step failed") in steps
