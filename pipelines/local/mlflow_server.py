"""A real `mlflow server` on 127.0.0.1: started, waited for, stopped. One helper for `segpipe run
--containers` and for the tests that need a server."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from components.common.errors import StepFailed

START_TIMEOUT_S = 120.0


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class MlflowServer:
    """`mlflow server` on 127.0.0.1 over `backend_uri`, its output in `log_path`.

    Artifacts go to `artifacts` (proxied through the server with `serve_artifacts`, as on a
    cluster); `extra` adds arguments (`--app-name basic-auth`), `env` replaces the environment.
    It runs in its own process group, so `kill`, `freeze` and `stop` reach its workers too; it
    can be stopped and started again on the same port and store.
    """

    def __init__(
        self,
        backend_uri: str,
        log_path: Path,
        artifacts: Path | None = None,
        *,
        serve_artifacts: bool = False,
        extra: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ):
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.env, self.cwd = env, cwd
        hosts = f"127.0.0.1:{self.port},localhost:{self.port}"  # MLflow 3 checks Host headers
        command = [sys.executable, "-m", "mlflow", "server", *extra]
        command += ["--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"]
        command += ["--backend-store-uri", backend_uri, "--allowed-hosts", hosts]
        if artifacts is not None:
            command += ["--artifacts-destination", str(artifacts.resolve())]
        if serve_artifacts:
            command.append("--serve-artifacts")
        self.command = command
        self.process: subprocess.Popen | None = None

    def start(self, timeout_s: float = START_TIMEOUT_S) -> MlflowServer:
        """Start it and wait until /health answers; fails with the log's tail if it does not."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.command,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=None if self.env is None else dict(self.env),
                cwd=self.cwd,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout_s
        while not self._healthy():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise StepFailed(
                    f"mlflow server did not start (log {self.log_path}):\n{self.log_tail()}"
                )
            time.sleep(0.3)
        return self

    def stop(self, timeout_s: float = 30) -> None:
        """Stop it (SIGTERM, then SIGKILL after `timeout_s`)."""
        if self.process is None or self.process.poll() is not None:
            return
        self._signal(signal.SIGCONT)  # a frozen one cannot exit
        self._signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """An outage: the whole server gone at once, no clean shutdown."""
        if self.process and self.process.poll() is None:
            self._signal(signal.SIGCONT)
            self._signal(signal.SIGKILL)
            self.process.wait()

    def freeze(self) -> None:
        """A hung server: its processes stopped (SIGSTOP), connections accepted, no replies."""
        self._signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self._signal(signal.SIGCONT)

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    def __enter__(self) -> MlflowServer:
        return self.start()

    def __exit__(self, *_exc) -> None:
        self.stop()

    def _healthy(self) -> bool:
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as reply:
                return reply.status == 200
        return False

    def _signal(self, number: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, number)


@contextlib.contextmanager
def sqlite_mlflow_server(root: Path, serve_artifacts: bool = True) -> Iterator[MlflowServer]:
    """A server with its SQLite store (`root/mlflow.db`), artifacts (`root/artifacts`) and log
    (`root/server.log`) under `root`."""
    store = f"sqlite:///{(root / 'mlflow.db').resolve()}"
    server = MlflowServer(
        store, root / "server.log", root / "artifacts", serve_artifacts=serve_artifacts
    )
    with server:
        yield server
