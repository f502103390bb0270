"""Progress events a step prints for `segpipe run`'s terminal: one marked JSON line each.

`segpipe run` sets SEGPIPE_PROGRESS=1 for its tasks and reads these lines from their output
(kfp.local forwards it); anywhere else (a cluster, a step's CLI) nothing is printed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil

ENV = "SEGPIPE_PROGRESS"
MARKER = "@@segpipe@@ "


def enabled() -> bool:
    return os.environ.get(ENV) == "1"


def emit(event: str, **fields: object) -> None:
    """Print one event line (flushed: the task's output is a pipe) when enabled. A reader that
    is gone (the run was stopped) is no error: the step must still close its MLflow run."""
    if enabled():
        with contextlib.suppress(BrokenPipeError):
            print(MARKER + json.dumps({"event": event, **fields}, default=str), flush=True)


def parse(line: str) -> dict | None:
    """The event in a line of task output, or None."""
    _, marker, payload = line.partition(MARKER)
    if not marker:
        return None
    try:
        event = json.loads(payload)
    except ValueError:
        return None
    return event if isinstance(event, dict) else None


def failed(step: str, error: BaseException) -> None:
    """The error that ends a step: its type, whether segpipe expects it (errors.is_expected),
    and its message on one line."""
    from components.common.errors import is_expected

    message = " ".join(str(error).split()) or type(error).__name__
    kind = type(error).__name__
    emit("failed", step=step, error=kind, expected=is_expected(error), message=message)


def stream_is_terminal(stream) -> bool:
    """Whether `stream` is an interactive terminal (progress bars redraw in place there)."""
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def terminal_columns(stream, default: int = 80) -> int:
    """The width of the terminal `stream` writes to (read at each call: it can be resized)."""
    try:
        return os.get_terminal_size(stream.fileno()).columns or default
    except (AttributeError, OSError, ValueError):
        return shutil.get_terminal_size((default, 24)).columns


class Bar:
    """A progress bar on `stream`: redrawn in place on a terminal, within its width (a wrapped
    line cannot be redrawn); elsewhere (a log, CI) a line per tenth done, in full."""

    MIN_WIDTH = 8  # the bar shrinks to this before the note is shortened

    def __init__(self, stream, total: int, unit: str, width: int = 24):
        self.stream = stream
        self.total = max(1, total)
        self.unit = unit
        self.width = width
        self.tty = stream_is_terminal(stream)
        self.shown = ""  # what is drawn in place now
        self._tenth = -1

    def update(self, done: int, note: str = "", prefix: str = "") -> None:
        if self.tty:
            # the last column stays free: a line that fills it wraps on some terminals
            text = self.line(done, note, prefix, terminal_columns(self.stream) - 1)
            self.stream.write("\r" + text.ljust(len(self.shown)))
            self.shown = text
        elif 10 * done // self.total > self._tenth:
            self._tenth = 10 * done // self.total
            self.stream.write(self.line(done, note, prefix) + "\n")
        self.stream.flush()

    def line(self, done: int, note: str = "", prefix: str = "", limit: int = 0) -> str:
        """The bar's text; with a `limit`, at most that long: a narrower bar first, then the
        note cut short (ending in "..."), then the whole line cut."""
        counts = f" {done}/{self.total} {self.unit}" + (f", {note}" if note else "")
        width = self.width
        if limit:
            spare = limit - len(prefix) - len(counts) - 2
            width = max(self.MIN_WIDTH, min(self.width, spare))
        filled = width * min(done, self.total) // self.total
        text = f"{prefix}[{'#' * filled}{'.' * (width - filled)}]{counts}"
        if limit and len(text) > limit:
            text = text[: max(0, limit - 3)] + "..."
        return text[:limit] if limit else text

    def clear(self) -> None:
        """Erase the bar drawn in place, so the next line starts clean."""
        if self.shown:
            self.stream.write("\r" + " " * len(self.shown) + "\r")
            self.stream.flush()
            self.shown = ""
