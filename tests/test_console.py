"""segpipe run's terminal: a line per step, a progress bar, the failure reason; the rest logged.

The Reporter is fed lines as kfp.local 2.17 writes them (its logger's format, a task's output
indented 4 spaces, colour codes included); the end-to-end runs are in test_run_terminal.py.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from components.common import progress
from pipelines.console import Reporter, capture, keep_log

CYAN, GREEN, RED, RESET = "\x1b[96m", "\x1b[92m", "\x1b[91m", "\x1b[0m"


def kfp(message: str, level: str = "INFO") -> str:
    return f"22:59:06.701 - {level} - {message}\n"


def started(task: str) -> str:
    return kfp(f"Executing task {CYAN}'{task}'{RESET}")


def ended(task: str, ok: bool = True) -> str:
    status = f"{GREEN}SUCCESS{RESET}" if ok else f"{RED}FAILURE{RESET}"
    return kfp(
        f"Task {CYAN}'{task}'{RESET} finished with status {status}", "INFO" if ok else "ERROR"
    )


def task(text: str) -> str:
    return f"    {text}\n"


def event(name: str, **fields) -> str:
    return task(progress.MARKER + json.dumps({"event": name, **fields}))


def _outputs(run_folder: Path, step: str, outputs: dict) -> str:
    """The task's executor_output.json, and the executor's echo of where it goes."""
    (run_folder / step).mkdir(parents=True)
    path = run_folder / step / "executor_output.json"
    path.write_text(json.dumps(outputs))
    return task(f'            "outputFile": "{path}"')


def _artifact(name: str, metadata: dict, uri: str = "") -> dict:
    return {name: {"artifacts": [{"name": name, "uri": uri, "metadata": metadata}]}}


def _reporter() -> tuple[Reporter, io.StringIO]:
    terminal = io.StringIO()
    return Reporter(terminal, "segpipe-unet", "champion"), terminal


def _lines(terminal: io.StringIO) -> list[str]:
    """The terminal's lines without their clock."""
    return [line[10:] for line in terminal.getvalue().splitlines()]


def test_a_line_as_each_step_starts_and_ends_with_its_figures(tmp_path):
    reporter, terminal = _reporter()
    run = tmp_path / "segpipe-2026-11-30-10-00-00-000001"
    counts = {"inputs": 240, "rejected": 2, "examples/train": 160, "examples/val": 78}
    preprocess = _artifact("counts", counts)
    preprocess.update(_artifact("dataset", {}, uri=str(run / "preprocess" / "dataset")))
    metrics = _artifact("metrics", {"mean_iou": 0.81234, "gate_reason": "meets the minimum"})
    lines = [
        kfp("Running pipeline: 'segpipe'"),
        started("preprocess"),
        kfp("Streamed logs:\n"),
        task("[KFP Executor 2026-11-30 10:00:01,000 INFO]: Got executor_input:"),
        _outputs(run, "preprocess", {"artifacts": preprocess}),
        task("WARNING:apache_beam.runners: a Beam notice nobody needs to read"),
        ended("preprocess"),
        task("dataset: Dataset( name='dataset',"),  # kfp's listing of the outputs
        started("train"),
        _outputs(run, "train", {"artifacts": _artifact("figures", {"epochs": 20.0})}),
        ended("train"),
        started("evaluate"),
        _outputs(run, "evaluate", {"parameterValues": {"Output": True}, "artifacts": metrics}),
        ended("evaluate"),
        started("publish"),
        _outputs(run, "publish", {"parameterValues": {"Output": "3"}}),
        ended("publish"),
    ]
    for line in lines:
        reporter.feed(line)

    assert _lines(terminal) == [
        "preprocess  started",
        "preprocess  done in 0s  240 inputs, 2 rejected, 0 ignored; 160 train, 78 val; "
        f"rejects: {run}/preprocess/dataset/rejects.jsonl",
        "train       started",
        "train       done in 0s  20 epochs",
        "evaluate    started",
        "evaluate    done in 0s  mean IoU 0.8123; gate PASSED: meets the minimum",
        "publish     started",
        "publish     done in 0s  segpipe-unet version 3 is champion",
    ]
    assert reporter.run_folder == run
    assert reporter.failure is None


def test_training_shows_a_progress_bar_a_line_per_tenth_outside_a_terminal():
    reporter, terminal = _reporter()
    reporter.feed(started("train"))
    for epoch in range(1, 21):
        reporter.feed(event("epoch", step="train", epoch=epoch, epochs=20, val_mean_iou=epoch / 40))
    lines = _lines(terminal)
    assert len(lines) == 1 + 11  # started, the first epoch, then epochs 2, 4, ..., 20
    assert lines[1].startswith("train       [#" + "." * 23 + "] 1/20 epochs, val mean IoU 0.0250")
    assert lines[2].startswith("train       [##" + "." * 22 + "] 2/20 epochs, val mean IoU 0.0500")
    assert lines[-1].startswith("train       [" + "#" * 24 + "] 20/20 epochs, val mean IoU 0.5000")


def test_the_bar_says_how_long_is_left_from_the_epochs_after_the_first(monkeypatch):
    import pipelines.console as console

    reporter, terminal = _reporter()
    start = console.time.monotonic()
    reporter.feed(started("train"))
    clock = iter(start + s for s in (500, 600, 700, 800, 900))  # the first epoch took 500 s
    monkeypatch.setattr(console.time, "monotonic", lambda: next(clock))
    for epoch in range(1, 6):  # 100 s each after the first
        reporter.feed(event("epoch", step="train", epoch=epoch, epochs=10, loss=0.5))
    lines = _lines(terminal)
    assert lines[1].endswith("1/10 epochs, loss 0.5000, 8m20s")  # no estimate from one epoch
    assert lines[2].endswith("2/10 epochs, loss 0.5000, 10m00s, about 13m20s left")
    assert lines[-1].endswith("5/10 epochs, loss 0.5000, 15m00s, about 8m20s left")


def test_in_a_terminal_the_bar_is_redrawn_in_place_and_cleared():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal = Terminal()
    reporter = Reporter(terminal)
    reporter.feed(started("train"))
    for epoch in (1, 2):
        reporter.feed(event("epoch", step="train", epoch=epoch, epochs=2, loss=0.5))
    reporter.feed(ended("train"))
    text = terminal.getvalue()
    assert text.count("\n") == 2  # started, done: the bar never took a line of its own
    assert "\r          train       [" + "#" * 12 + "." * 12 + "] 1/2 epochs, loss 0.5000" in text
    assert text.split("\n")[-2].startswith("\r")  # cleared before "done" was written


def test_a_failed_step_says_why_in_one_line():
    reporter, terminal = _reporter()
    reporter.feed(started("preprocess"))
    message = "30 of 240 inputs rejected; details in /out/rejects.jsonl"
    failed = event("failed", step="preprocess", error="TooManyRejects", message=message)
    reporter.feed(failed.replace('"message"', '"expected": true, "message"'))
    reporter.feed(task("Traceback (most recent call last):"))
    reporter.feed(task('  File "x.py", line 1, in <module>'))
    reporter.feed(task(f"components.preprocess.pipeline.TooManyRejects: {message}"))
    reporter.feed(ended("preprocess", ok=False))
    reporter.feed(kfp("Skipping task train: upstream task(s) ['preprocess'] failed."))
    assert _lines(terminal) == [
        "preprocess  started",
        f"preprocess  FAILED after 0s  {message}",
        "train       skipped  an earlier step failed",
    ]
    assert (reporter.failure.step, reporter.failure.reason) == ("preprocess", message)


def test_the_step_says_whether_it_expected_the_error_and_the_console_follows(monkeypatch, capsys):
    from components.common.errors import SegpipeError, StepFailed
    from pipelines.console import describe_error

    class Refused(SegpipeError):
        reason = "refused"

    monkeypatch.setenv(progress.ENV, "1")
    for error, expected in [
        (Refused("no"), True),
        (StepFailed("server down"), True),
        (ValueError("bad"), True),
        (KeyError("splits"), False),
        (RuntimeError("bug"), False),
    ]:
        progress.failed("train", error)
        emitted = progress.parse("    " + capsys.readouterr().out)
        assert emitted["expected"] is expected, error
        described = describe_error(emitted["error"], emitted["message"], emitted["expected"])
        assert ("unexpected" in described) is not expected, described


def test_without_an_event_the_tracebacks_last_line_is_the_reason_and_a_bug_says_so():
    reporter, _ = _reporter()
    reporter.feed(started("train"))
    reporter.feed(task("Traceback (most recent call last):"))
    reporter.feed(task('  File "trainer.py", line 9, in train'))
    reporter.feed(task("    info = stats['splits']"))
    reporter.feed(task("KeyError: 'splits'"))
    reporter.feed(ended("train", ok=False))
    assert reporter.failure.reason == "KeyError: 'splits' (unexpected: the traceback is in the log)"


def test_a_failed_snapshot_skips_the_rest_and_a_failed_evaluate_skips_publish():
    reporter, terminal = _reporter()
    reporter.feed(kfp("Skipping task condition-2: upstream task(s) ['snapshot'] failed."))
    reporter.feed(kfp("Skipping task condition-5: upstream task(s) ['evaluate'] failed."))
    assert _lines(terminal) == [
        "the rest    skipped  an earlier step failed",
        "publish     skipped  an earlier step failed",
    ]


def test_a_gate_that_did_not_pass_skips_publish():
    reporter, terminal = _reporter()
    reporter.feed(kfp("Skipping conditional task condition-5 (condition evaluated to False)"))
    assert _lines(terminal) == ["publish     skipped  the gate did not pass"]


def test_the_snapshot_line_says_what_changed_and_an_unchanged_run_says_the_rest_was_skipped(
    tmp_path,
):
    changed = {"status": "changed", "inputs": 34, "compared_with": "segpipe-unet version 1"}
    changed.update(inputs_added=10, inputs_removed=0, inputs_changed=1, inputs_unchanged=23)
    first = tmp_path / "run-1"
    reporter, terminal = _reporter()
    for line in (
        started("snapshot"),
        _outputs(first, "snapshot", {"artifacts": _artifact("snapshot", changed)}),
        ended("snapshot"),
        kfp("Skipping conditional task condition-5 (condition evaluated to False)"),
    ):
        reporter.feed(line)
    assert _lines(terminal)[1:] == [
        "snapshot    done in 0s  34 inputs, 0 ignored; 10 added, 0 removed, 1 changed",
        "publish     skipped  the gate did not pass",
    ]

    unchanged = {**changed, "status": "unchanged, nothing to do", "inputs_added": 0}
    unchanged.update(inputs_changed=0)
    reporter, terminal = _reporter()
    for line in (
        started("snapshot"),
        _outputs(tmp_path / "run-2", "snapshot", {"artifacts": _artifact("snapshot", unchanged)}),
        ended("snapshot"),
        kfp("Skipping conditional task condition-1 (condition evaluated to False)"),
        started("finish"),
        ended("finish"),
    ):
        reporter.feed(line)
    assert _lines(terminal)[1:3] == [
        "snapshot    done in 0s  34 inputs, 0 ignored; 0 added, 0 removed, 0 changed; "
        "unchanged, nothing to do",
        "the rest    skipped  unchanged, nothing to do: no training, no new version",
    ]


def test_capture_sends_all_output_to_the_log_and_only_the_reporters_lines_to_the_terminal(
    tmp_path,
):
    log_path = tmp_path / "out" / "run.log"
    terminal = io.StringIO()
    saved = sys.stdout
    sys.stdout = terminal
    try:
        with capture(log_path, verbose=False) as reporter:
            print(started("preprocess"), end="")
            print("a python print")
            os.write(1, b"a write to fd 1\n")
            subprocess.run(["sh", "-c", "echo a child on fd 2 >&2"], check=True)
            import logging

            logging.getLogger("kfp").info("kfp says something")
    finally:
        sys.stdout = saved
    log = log_path.read_text()
    for text in ("a python print", "a write to fd 1", "a child on fd 2", "kfp says something"):
        assert text in log
    assert _lines(terminal) == ["preprocess  started"]
    run_folder = tmp_path / "segpipe-run"
    run_folder.mkdir()
    reporter.run_folder = run_folder
    assert keep_log(log_path, reporter) == run_folder / "segpipe.log"


def test_verbose_streams_everything_too(tmp_path):
    terminal = io.StringIO()
    saved = sys.stdout
    sys.stdout = terminal
    try:
        with capture(tmp_path / "run.log", verbose=True):
            print("every line")
    finally:
        sys.stdout = saved
    assert "every line" in terminal.getvalue()


@pytest.mark.parametrize("value", [None, "0"])
def test_steps_print_progress_events_only_for_segpipe_run(monkeypatch, capsys, value):
    if value is None:
        monkeypatch.delenv(progress.ENV, raising=False)
    else:
        monkeypatch.setenv(progress.ENV, value)
    progress.emit("epoch", epoch=1)
    assert capsys.readouterr().out == ""
    monkeypatch.setenv(progress.ENV, "1")
    progress.emit("epoch", epoch=1)
    assert progress.parse("    " + capsys.readouterr().out) == {"event": "epoch", "epoch": 1}


def test_the_first_failed_step_is_the_runs_failure_not_the_exit_task_after_it():
    reporter, _ = _reporter()
    lines = [
        started("train"),
        event("failed", step="train", error="TrackingOutage", message="server down"),
        ended("train", ok=False),
        started("finish"),
        event("failed", step="finish", error="RuntimeError", message="server down"),
        ended("finish", ok=False),
    ]
    for line in lines:
        reporter.feed(line)
    assert reporter.failure.step == "train" and "server down" in reporter.failure.reason


def test_the_run_summary_carries_the_snapshots_lineage_warning(capsys):
    from pipelines.cli.local_commands import _print_summary
    from pipelines.local.runner import RunSummary

    warning = "segpipe-unet version 2's lineage cannot be verified: edited; retraining"
    summary = RunSummary(0.8, True, "ok", "r1", "3", "sqlite:///x", "mlflow ui", warning=warning)
    _print_summary(summary)
    assert f"  WARNING:    {warning}" in capsys.readouterr().out.splitlines()
