"""SIGTERM (or Ctrl-C) during a local run: stop what the run started, then unwind.

Ctrl-C in a terminal reaches every process of the job; `kill PID`, or a supervisor that signals
only its own child, reaches `segpipe run` alone. Its steps run as subprocesses (kfp.local), which
would train on, orphaned, holding the cores. The runner closes the run's MLflow runs afterwards
(`runner.close_stopped_run`).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

GRACE_S = 10.0  # how long a step has to exit after SIGTERM before it is killed


class Terminated(SystemExit):
    """The run was stopped by `signal` (SIGTERM, or SIGINT: Ctrl-C); its exit status is 128 + the
    signal's number. `log_path`: its log, where known."""

    def __init__(self, signum: int):
        super().__init__(128 + signum)
        self.signal = signal.Signals(signum)
        self.log_path: Path | None = None

    @property
    def by(self) -> str:
        return "Ctrl-C" if self.signal == signal.SIGINT else self.signal.name


def stop_descendants(grace_s: float = GRACE_S) -> int:
    """SIGTERM to every process this one started (and theirs), SIGKILL to those still running
    after `grace_s`; returns how many there were."""
    import psutil

    descendants = psutil.Process().children(recursive=True)
    for process in descendants:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.terminate()
    _, alive = psutil.wait_procs(descendants, timeout=grace_s)
    for process in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    psutil.wait_procs(alive, timeout=grace_s)
    return len(descendants)


@contextlib.contextmanager
def sigterm_unwinds(stop_started: bool = False) -> Iterator[None]:
    """Within the block, SIGTERM raises Terminated, so that `finally` blocks run; first, where
    `stop_started`, it stops the processes this one started. Only the main thread may set
    handlers: elsewhere the block changes nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum: int, _frame) -> None:
        if stop_started:
            stop_descendants()
        raise Terminated(signum)

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
