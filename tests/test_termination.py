"""SIGTERM to a local run stops the step processes it started, not only itself."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from pipelines.local.termination import Terminated, sigterm_unwinds

REPO = Path(__file__).resolve().parents[1]

# As kfp.local's SubprocessRunner runs a step: `sh` running the step's Python, the parent
# reading the step's output line by line, then waiting on it.
RUN_A_STEP = textwrap.dedent(
    """
    import subprocess, sys
    from pipelines.local.termination import sigterm_unwinds

    step = "sleep 300 & echo $!; wait"
    with sigterm_unwinds(stop_started={stop}):
        with subprocess.Popen(["sh", "-c", step], stdout=subprocess.PIPE, text=True) as child:
            grandchild = child.stdout.readline().strip()
            print("ready", child.pid, grandchild, flush=True)
            for line in child.stdout:
                print(line, end="")
            child.wait()
    """
)


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _start_run(stop: bool) -> tuple[subprocess.Popen, list[int]]:
    run = subprocess.Popen(
        [sys.executable, "-c", RUN_A_STEP.format(stop=stop)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    word, *pids = run.stdout.readline().split()
    assert word == "ready"
    return run, [int(pid) for pid in pids]


def test_sigterm_stops_the_step_and_what_it_started_then_exits_143():
    run, steps = _start_run(stop=True)
    run.send_signal(signal.SIGTERM)
    assert run.wait(timeout=30) == 128 + signal.SIGTERM
    deadline = time.monotonic() + 10
    while not all(_gone(pid) for pid in steps) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert all(_gone(pid) for pid in steps), steps


def test_without_stopping_them_the_run_waits_on_its_step():
    """What kfp.local does alone: SIGTERM leaves the step running and the run waiting on it."""
    run, steps = _start_run(stop=False)
    try:
        run.send_signal(signal.SIGTERM)
        with pytest.raises(subprocess.TimeoutExpired):
            run.wait(timeout=3)
        assert not any(_gone(pid) for pid in steps)
    finally:
        for pid in steps:
            os.kill(pid, signal.SIGKILL)
        run.wait(timeout=30)


def test_sigterm_unwinds_the_block_and_the_handler_is_put_back():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Terminated) as raised, sigterm_unwinds():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler runs at once; this sleep is cut short
    assert raised.value.code == 128 + signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is before


def test_segpipe_run_says_it_was_stopped_and_where_its_log_is(monkeypatch, tmp_path, capsys):
    from pipelines.cli.main import main
    from pipelines.local import runner

    def stopped(*_args, **_kwargs):
        error = Terminated(signal.SIGTERM)
        error.log_path = tmp_path / "segpipe.log"
        raise error

    monkeypatch.setattr(runner, "run_local", stopped)
    code = main(["run", "--data", str(tmp_path), "--workdir", str(tmp_path / "work")])
    assert code == 128 + signal.SIGTERM
    *_, said, log = capsys.readouterr().err.strip().splitlines()
    assert said == "segpipe run: stopped by SIGTERM"
    assert log == f"  log:        {tmp_path / 'segpipe.log'}"


def test_a_stopped_runs_mlflow_runs_are_closed_killed_and_other_runs_are_left(
    mlflow_store, monkeypatch, tmp_path
):
    """The finish step never runs after SIGTERM: segpipe run closes the runs in its stead, in
    the store it names (with --containers not the environment's: that is the steps')."""
    from mlflow.tracking import MlflowClient

    from pipelines.local.runner import close_stopped_run

    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    elsewhere = tmp_path / "elsewhere"  # where a default store (sqlite:///mlflow.db) would go
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    client = MlflowClient(mlflow_store)
    experiment_id = client.get_experiment_by_name("segpipe").experiment_id

    def running_step(pipeline_run_id: str, step: str) -> str:
        tags = {"segpipe.pipeline_run_id": pipeline_run_id, "segpipe.step": step}
        return client.create_run(experiment_id, tags=tags).info.run_id

    older = running_step("p-older", "train")  # another run's, still going
    time.sleep(0.01)
    since = time.time()
    time.sleep(0.01)
    train = running_step("p-stopped", "train")
    time.sleep(0.01)
    later = running_step("p-later", "train")  # another run on the same store, started after

    assert close_stopped_run(mlflow_store, "segpipe", since) == "p-stopped"
    assert client.get_run(train).info.status == "KILLED"
    (parent,) = client.search_runs(
        [experiment_id],
        "tags.`segpipe.step` = 'pipeline' and tags.`segpipe.pipeline_run_id` = 'p-stopped'",
    )
    assert parent.info.status == "KILLED"
    assert client.get_run(older).info.status == "RUNNING"
    assert client.get_run(later).info.status == "RUNNING"
    assert not (elsewhere / "mlflow.db").exists()


def test_closing_a_stopped_run_gives_up_quietly_on_a_store_that_does_not_answer():
    from pipelines.local.runner import close_stopped_run

    started = time.monotonic()
    assert close_stopped_run("http://127.0.0.1:9", "segpipe", time.time()) == ""
    assert time.monotonic() - started < 30


def test_ctrl_c_in_a_run_is_a_stop_by_sigint_that_names_its_log(tmp_path):
    from pipelines.local.runner import run_reported

    def interrupted() -> dict:
        raise KeyboardInterrupt

    with pytest.raises(Terminated) as raised:
        run_reported(interrupted, tmp_path, {}, verbose=False)
    assert raised.value.code == 128 + signal.SIGINT
    assert raised.value.by == "Ctrl-C"
    assert raised.value.log_path.parent == tmp_path
    assert raised.value.log_path.is_file()


def test_a_step_whose_reader_is_gone_still_gets_to_close_its_run(monkeypatch):
    """After Ctrl-C the run no longer reads the step's output: reporting the step's error must
    not raise, or the step never marks its MLflow run (MLflow's exit hook marks it FINISHED)."""
    from components.common import progress

    written = []

    class GonePipe:
        def write(self, text):
            written.append(text)
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self):
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setenv(progress.ENV, "1")
    monkeypatch.setattr(sys, "stdout", GonePipe())
    progress.failed("train", KeyboardInterrupt())
    assert written and '"event": "failed"' in written[0]  # tried, and the pipe was gone
