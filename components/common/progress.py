"""Progress events a step prints for `segpipe run`'s terminal: one marked JSON line each.

`segpipe run` sets SEGPIPE_PROGRESS=1 for its tasks and reads these lines from their output
(kfp.local forwards it); anywhere else (a cluster, a step's CLI) nothing is printed.
"""

from __future__ import annotations

import json
import os

ENV = "SEGPIPE_PROGRESS"
MARKER = "@@segpipe@@ "


def enabled() -> bool:
    return os.environ.get(ENV) == "1"


def emit(event: str, **fields: object) -> None:
    """Print one event line (flushed: the task's output is a pipe) when enabled."""
    if enabled():
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


class Bar:
    """A progress bar on `stream`: redrawn in place on a terminal, elsewhere (a log, CI) a line
    per tenth done."""

    def __init__(self, stream, total: int, unit: str, width: int = 24):
        self.stream = stream
        self.total = max(1, total)
        self.unit = unit
        self.width = width
        self.tty = stream_is_terminal(stream)
        self.shown = ""  # what is drawn in place now
        self._tenth = -1

    def update(self, done: int, note: str = "", prefix: str = "") -> None:
        filled = self.width * done // self.total
        text = f"{prefix}[{'#' * filled}{'.' * (self.width - filled)}] {done}/{self.total} "
        text += f"{self.unit}, {note}" if note else self.unit
        if self.tty:
            self.stream.write("\r" + text.ljust(len(self.shown)))
            self.shown = text
        elif 10 * done // self.total > self._tenth:
            self._tenth = 10 * done // self.total
            self.stream.write(text + "\n")
        self.stream.flush()

    def clear(self) -> None:
        """Erase the bar drawn in place, so the next line starts clean."""
        if self.shown:
            self.stream.write("\r" + " " * len(self.shown) + "\r")
            self.stream.flush()
            self.shown = ""
