"""Beam's portable-runner services as separate processes, as a Flink or Spark cluster runs them:
a job service (the Job API, artifact staging) and external worker pools that start the SDK
workers (`--environment_type=EXTERNAL`). Used by the portable-runner tests."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from pipelines.local.mlflow_server import free_port

REPO = Path(__file__).resolve().parents[1]
POOL_MODULE = "apache_beam.runners.worker.worker_pool_main"


def _wait_for_port(port: int, process: subprocess.Popen, log: Path, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"exited ({process.returncode}) before serving: {log.read_text()}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError(f"nothing served on 127.0.0.1:{port} after {timeout_s}s: {log}")


@contextlib.contextmanager
def _service(command: Sequence[str], port: int, log: Path, env: dict | None) -> Iterator[str]:
    """`command` started in its own process group, serving on `port`; stopped on exit."""
    with log.open("w") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    try:
        _wait_for_port(port, process, log)
        yield f"localhost:{port}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def python_env() -> dict[str, str]:
    """This interpreter's environment for a child: its venv first on PATH (the worker pool
    starts SDK workers with a bare `python`) and the repository importable."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


@contextlib.contextmanager
def job_service(log_dir: Path) -> Iterator[str]:
    """Beam's local job service; yields its Job API endpoint."""
    port = free_port()
    command = [sys.executable, "-m", "apache_beam.runners.portability.local_job_service_main"]
    command += ["--port", str(port), "--staging_dir", str(log_dir / "staging")]
    with _service(command, port, log_dir / "job-service.log", python_env()) as endpoint:
        yield endpoint


@contextlib.contextmanager
def process_worker_pool(log: Path) -> Iterator[str]:
    """A worker pool as a plain process with this venv; yields its endpoint."""
    port = free_port()
    command = [sys.executable, "-m", POOL_MODULE, "--service_port", str(port)]
    with _service(command, port, log, python_env()) as endpoint:
        yield endpoint


@contextlib.contextmanager
def container_worker_pool(image: str, shared: Path, log: Path) -> Iterator[str]:
    """A worker pool in `image` (host network, its own non-root user), with `shared` mounted at
    the same path; yields its endpoint. Needs `docker` (DOCKER_HOST as the caller set it)."""
    port = free_port()
    name = f"segpipe-beam-pool-{port}"
    command = ["docker", "run", "--rm", "--name", name, "--network", "host"]
    command += ["--volume", f"{shared}:{shared}", image, "python", "-m", POOL_MODULE]
    command += ["--service_port", str(port)]
    try:
        with _service(command, port, log, None) as endpoint:
            yield endpoint
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)


def portable_options(job_endpoint: str, pool_endpoint: str) -> str:
    """`beam_options` for preprocess: the job through `job_endpoint`, its SDK worker started by
    the pool at `pool_endpoint` (Beam's local job service runs a job on one worker)."""
    return (
        f"--job_endpoint={job_endpoint} --environment_type=EXTERNAL "
        f"--environment_config={pool_endpoint}"
    )
