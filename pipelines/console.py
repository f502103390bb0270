"""What `segpipe run` shows in the terminal: a line as each step starts and ends, a progress
bar while it trains, the reason a step failed; the full output goes to a log file.

kfp.local runs each task as a subprocess and prints its output, line by line, through
`print` (indented 4 spaces), and its own progress through the root logger. Within `capture`,
this process's stdout and stderr (the Python objects and fds 1 and 2, so child processes and
C libraries too) go into a pipe; a thread copies every line to the log file and hands it to a
`Reporter`, which recognizes kfp's lines ("Executing task 'train'"), segpipe's progress
events (components.common.progress) and tracebacks, and writes its lines to the terminal.
Everything passes through one pipe in the order it was written, so a step's last event
always arrives before kfp says the step ended.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import sys
import textwrap
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from components.common import progress
from components.common.errors import error_class, is_expected
from components.common.tracking.lineage import UNCHANGED_OUTCOME

STATUS_COLUMN = 22  # "HH:MM:SS  <step, 10>  ": where a step line's status starts
ANSI = re.compile(r"\x1b\[[0-9;]*m")
KFP_LINE = re.compile(r"^\d\d:\d\d:\d\d\.\d+ - (?P<level>[A-Z]+) - (?P<message>.*)$")
STARTED = re.compile(r"^Executing task '(?P<task>[^']+)'")
ENDED = re.compile(r"^Task '(?P<task>[^']+)' finished with status (?P<status>SUCCESS|FAILURE)")
RETRYING = re.compile(
    r"^Task (?P<task>\S+) failed \(attempt (?P<attempt>\d+)/(?P<of>\d+)\)\. "
    r"Retrying in (?P<delay>[\d.]+)s"
)
SKIPPED_BRANCH = re.compile(r"^Skipping conditional task (?P<task>\S+)")
SKIPPED_UPSTREAM = re.compile(r"^Skipping task (?P<task>\S+): upstream task\(s\) (?P<failed>.*)")
OUTPUT_FILE = re.compile(r'"outputFile": "(?P<path>[^"]+/executor_output\.json)"')
EXCEPTION = re.compile(r"^(?P<type>[A-Za-z_][\w.]*): (?P<message>.*)$")
TASK_INDENT = " " * 4  # kfp.local's indentation of a task's output
END = "@@segpipe-end@@"
LOG_FORMAT = "%(asctime)s - %(levelname)s - %(message)s"  # kfp.local's own format


@dataclass
class Step:
    """A task as the reporter follows it."""

    name: str
    started: float = field(default_factory=time.monotonic)
    attempt: int = 1
    reason: str = ""  # from the step's `failed` event
    exception: str = ""  # the last traceback's final line in its output
    in_traceback: bool = False
    outputs_file: str = ""
    first_epoch: tuple[int, float] | None = None  # the first epoch it reported, and when


@dataclass(frozen=True)
class Failure:
    step: str
    reason: str


def describe_error(error_type: str, message: str, expected: bool | None = None) -> str:
    """One line for a failed step: the message, and for an unexpected error its type too.

    `expected` comes from the step, which knows the error's class; without it (a traceback's
    last line only) the class is looked up among those already loaded here."""
    short = error_type.rsplit(".", 1)[-1]
    if expected is None:
        kind = error_class(error_type)
        expected = kind is not None and is_expected(kind)
    if expected:
        return message or short
    return f"{short}: {message} (unexpected: the traceback is in the log)"


def duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


class Reporter:
    """Turns the run's output, line by line, into a few lines on the terminal."""

    def __init__(self, terminal: TextIO, model_name: str = "", alias: str = ""):
        self.terminal = terminal
        self.tty = progress.stream_is_terminal(terminal)
        self.model_name = model_name
        self.alias = alias
        self.current: Step | None = None
        self.failure: Failure | None = None
        self.run_folder: Path | None = None  # kfp.local's folder of this run's outputs
        self._retry: tuple[str, int] | None = None  # (task, its next attempt) after a retry
        self._bar: progress.Bar | None = None  # the current step's progress bar
        self.unchanged = False  # the snapshot found nothing to do: the rest will be skipped

    def feed(self, raw: str) -> None:
        """One line of the run's output."""
        line = ANSI.sub("", raw.rstrip("\r\n"))
        if self.current is not None and line.startswith(TASK_INDENT):
            self._task_line(line[len(TASK_INDENT) :])
            return
        match = KFP_LINE.match(line)
        if match:
            self._kfp_line(match["message"])

    # -- kfp.local's progress

    def _kfp_line(self, message: str) -> None:
        if match := STARTED.match(message):
            retry, self._retry = self._retry, None
            attempt = retry[1] if retry and retry[0] == match["task"] else 1
            self.current = Step(match["task"], attempt=attempt)
            self._bar = None
            self._say(
                self.current.name, f"started (attempt {attempt})" if attempt > 1 else "started"
            )
        elif (match := ENDED.match(message)) and self.current is not None:
            step, self.current = self.current, None
            took = duration(time.monotonic() - step.started)
            if match["status"] == "SUCCESS":
                if step.name == "snapshot":
                    snapshot = self.outputs(step.name)
                    self.unchanged = _snapshot_status(snapshot) == UNCHANGED_OUTCOME
                self._say(step.name, f"done in {took}", self._figures(step))
            else:
                reason = self._reason(step)
                # the first failure is the run's: the exit task (finish) failing after it,
                # e.g. on the same unreachable server, does not replace it
                if self.failure is None:
                    self.failure = Failure(step.name, reason)
                self._say(step.name, f"FAILED after {took}", reason)
        elif match := RETRYING.match(message):
            attempt = int(match["attempt"]) + 1
            self._retry = (match["task"], attempt)
            self.failure = None
            wait = duration(float(match["delay"]))
            self._say(match["task"], "retrying", f"attempt {attempt} of {match['of']} in {wait}")
        elif match := SKIPPED_BRANCH.match(message):
            if self.unchanged:  # the snapshot's condition: nothing after it ran
                self._say(
                    "the rest", "skipped", f"{UNCHANGED_OUTCOME}: no training, no new version"
                )
                self.unchanged = False  # said once
            elif match["task"].startswith("condition"):  # the gate's: publish did not run
                self._say("publish", "skipped", "the gate did not pass")
        elif match := SKIPPED_UPSTREAM.match(message):
            name = match["task"]
            if name.startswith(
                "condition"
            ):  # snapshot's condition holds the rest; the gate's, publish
                name = "the rest" if "'snapshot'" in match["failed"] else "publish"
            self._say(name, "skipped", "an earlier step failed")

    # -- the task's own output

    def _task_line(self, text: str) -> None:
        step = self.current
        event = progress.parse(text)
        if event is not None:
            self._event(step, event)
            return
        if not step.outputs_file and (match := OUTPUT_FILE.search(text)):
            step.outputs_file = match["path"]
            self.run_folder = Path(match["path"]).parent.parent
        if text.startswith("Traceback (most recent call last)"):
            step.in_traceback = True
        elif step.in_traceback and text and not text[0].isspace():
            if match := EXCEPTION.match(text):
                step.exception = describe_error(match["type"], match["message"])
            step.in_traceback = False

    def _event(self, step: Step, event: dict) -> None:
        if event.get("event") == "failed":
            step.reason = describe_error(
                str(event.get("error")), str(event.get("message")), event.get("expected")
            )
        elif event.get("event") == "epoch":
            self._epoch(step, int(event["epoch"]), int(event["epochs"]), event)

    def _epoch(self, step: Step, epoch: int, epochs: int, event: dict) -> None:
        if self._bar is None:
            self._bar = progress.Bar(self.terminal, epochs, "epochs")
        note = f"loss {event['loss']:.4f}" if "loss" in event else ""
        if "val_mean_iou" in event:
            note = f"val mean IoU {event['val_mean_iou']:.4f}"
        now = time.monotonic()
        note += f", {duration(now - step.started)}"
        if step.first_epoch is None:  # it may resume from a checkpoint: the first seen counts
            step.first_epoch = (epoch, now)
        first, at = step.first_epoch
        if first < epoch < epochs:  # the first epoch fills caches and traces: not a measure
            note += f", about {duration((now - at) / (epoch - first) * (epochs - epoch))} left"
        clock = " " * 8 if self._bar.tty else time.strftime("%H:%M:%S")
        self._bar.update(epoch, note, prefix=f"{clock}  {step.name:<10}  ")

    # -- what the terminal shows

    def _say(self, step: str, status: str, detail: str = "") -> None:
        if self._bar is not None:  # a new line replaces a bar drawn in place
            self._bar.clear()
        text = f"{time.strftime('%H:%M:%S')}  {step:<10}  {status}"
        text = f"{text}  {detail}" if detail else text
        if self.tty:  # within the width: continuation lines under the status
            width = progress.terminal_columns(self.terminal) - 1
            indent = " " * min(STATUS_COLUMN, width // 2)
            text = "\n".join(textwrap.wrap(text, width, subsequent_indent=indent)) or text
        self.terminal.write(f"{text}\n")
        self.terminal.flush()

    def _reason(self, step: Step) -> str:
        return step.reason or step.exception or "the task exited with an error (see the log)"

    def outputs(self, step: str) -> dict:
        """The step's outputs as kfp.local wrote them (executor_output.json), or {}."""
        if self.run_folder is None:
            return {}
        path = self.run_folder / step / "executor_output.json"
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return {}

    def _figures(self, step: Step) -> str:
        """The step's key figures, from its KFP outputs (what the KFP UI shows)."""
        outputs = self.outputs(step.name)
        if not outputs:
            return ""
        try:
            return step_figures(step.name, outputs, self.model_name, self.alias)
        except (KeyError, IndexError, TypeError, ValueError):
            return ""


def _metadata(outputs: dict, name: str) -> dict:
    return outputs["artifacts"][name]["artifacts"][0]["metadata"]


def _snapshot_status(outputs: dict) -> str:
    try:
        return str(_metadata(outputs, "snapshot").get("status", ""))
    except (KeyError, IndexError, TypeError):
        return ""


def step_figures(step: str, outputs: dict, model_name: str, alias: str) -> str:
    """One line of a finished step's figures, read from its KFP outputs."""
    values = outputs.get("parameterValues", {})
    if step == "snapshot":
        meta = _metadata(outputs, "snapshot")
        text = f"{int(meta['inputs'])} inputs, {int(meta.get('ignored', 0))} ignored"
        if "inputs_added" in meta:
            changes = ("added", "removed", "changed")
            text += "; " + ", ".join(f"{int(meta[f'inputs_{k}'])} {k}" for k in changes)
        else:
            text += f"; {meta['compared_with']}"
        if meta["status"] == UNCHANGED_OUTCOME:
            text += f"; {UNCHANGED_OUTCOME}"
        if meta.get("warning"):
            text += f"; WARNING: {meta['compared_with']}'s lineage unverified, retraining"
        return text
    if step == "preprocess":
        counts = _metadata(outputs, "counts")
        splits = ", ".join(
            f"{int(v)} {k.split('/', 1)[1]}" for k, v in counts.items() if k.startswith("examples/")
        )
        text = f"{int(counts['inputs'])} inputs, {int(counts['rejected'])} rejected"
        text += f", {int(counts.get('ignored', 0))} ignored; {splits}"
        if counts["rejected"]:
            dataset = outputs["artifacts"]["dataset"]["artifacts"][0]["uri"]
            text += f"; rejects: {dataset}/rejects.jsonl"
        return text
    if step == "train":
        figures = _metadata(outputs, "figures")
        text = f"{int(figures['epochs'])} epochs"
        if "best_val_mean_iou" in figures:
            text += f", best val mean IoU {figures['best_val_mean_iou']:.4f}"
        return text
    if step == "evaluate":
        metrics = _metadata(outputs, "metrics")
        decision = "PASSED" if values.get("Output") else "FAILED"
        return f"mean IoU {metrics['mean_iou']:.4f}; gate {decision}: {metrics['gate_reason']}"
    if step == "publish":
        return f"{model_name} version {values['Output']} is {alias}"
    if step == "finish":
        return "MLflow run closed"
    return ""


def _terminal_stream() -> TextIO:
    """Where the reporter writes: this process's stdout as it is now, kept past `capture`."""
    try:
        if sys.stdout.fileno() == 1:  # the real fd 1, which `capture` redirects: keep a copy
            return open(os.dup(1), "w", buffering=1, encoding="utf-8", errors="replace")
    except (AttributeError, OSError, ValueError):  # a StringIO or a test's capture
        pass
    return sys.stdout


def _pump(read_fd: int, log: TextIO, reporter: Reporter, echo: TextIO | None) -> None:
    """Copy the pipe to the log (and `echo`), feeding each line to the reporter, until END."""
    with open(read_fd, encoding="utf-8", errors="replace", newline="\n") as pipe:
        for line in pipe:
            if line.rstrip("\n") == END:
                break
            log.write(line)
            if echo is not None:
                echo.write(line)
                echo.flush()
            try:
                reporter.feed(line)
            except Exception:  # the log must still get everything
                log.write(f"segpipe: the terminal reporter failed:\n{traceback.format_exc()}")
    log.flush()


@contextlib.contextmanager
def capture(log_path: Path, verbose: bool, model_name: str = "", alias: str = "") -> Iterator:
    """Within the block, all output goes to `log_path` (and, with `verbose`, to the terminal
    too) while a Reporter writes its lines to the terminal; yields the Reporter."""
    terminal = _terminal_stream()
    reporter = Reporter(terminal, model_name, alias)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "a", encoding="utf-8", errors="replace")
    read_fd, write_fd = os.pipe()
    pump = threading.Thread(
        target=_pump, args=(read_fd, log, reporter, terminal if verbose else None), daemon=True
    )
    pump.start()
    sys.stdout.flush()
    sys.stderr.flush()
    saved_fds = (os.dup(1), os.dup(2))
    saved_streams = (sys.stdout, sys.stderr)
    stream = open(os.dup(write_fd), "w", buffering=1, encoding="utf-8", errors="replace")
    os.dup2(write_fd, 1)
    os.dup2(write_fd, 2)
    sys.stdout = sys.stderr = stream
    root = logging.getLogger()
    handler = logging.StreamHandler(stream)  # kfp's retries and skips, outside its tasks
    handler.setFormatter(logging.Formatter(LOG_FORMAT, "%H:%M:%S.000"))
    saved_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield reporter
    finally:
        root.removeHandler(handler)
        root.setLevel(saved_level)
        stream.flush()
        os.write(write_fd, f"\n{END}\n".encode())
        sys.stdout, sys.stderr = saved_streams
        os.dup2(saved_fds[0], 1)
        os.dup2(saved_fds[1], 2)
        for fd in (*saved_fds, write_fd):
            os.close(fd)
        stream.close()
        pump.join(timeout=60)
        log.close()


def keep_log(log_path: Path, reporter: Reporter) -> Path:
    """Move the log into the run's folder (kfp.local's folder of its outputs) when known."""
    if reporter.run_folder is None or not reporter.run_folder.is_dir():
        return log_path
    target = reporter.run_folder / "segpipe.log"
    shutil.move(str(log_path), target)
    return target
