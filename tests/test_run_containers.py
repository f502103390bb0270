"""`segpipe run --containers` without a Docker engine: its MLflow server, its refusals, and the
provenance tags the steps record. (The run in real images: make test-containers.)"""

from __future__ import annotations

import os
import socket
import urllib.parse
from pathlib import Path

import pytest

from pipelines.cli.main import main


def _accepts_connections(uri: str) -> bool:
    parsed = urllib.parse.urlparse(uri)
    try:
        socket.create_connection((parsed.hostname, parsed.port), timeout=2).close()
    except OSError:
        return False
    return True


@pytest.mark.slow
def test_mlflow_server_proxies_artifacts_and_stops_when_the_run_fails(tmp_path: Path):
    import mlflow

    from pipelines.local.containers import mlflow_server

    root = tmp_path / "server"
    with pytest.raises(RuntimeError, match="a step failed"):
        with mlflow_server(root) as uri:
            assert uri.startswith("http://127.0.0.1:")
            mlflow.set_tracking_uri(uri)
            mlflow.set_experiment("proxied")
            with mlflow.start_run() as run:
                mlflow.log_text("hello", "note.txt")
            assert run.info.artifact_uri.startswith("mlflow-artifacts:")
            raise RuntimeError("a step failed")
    assert not _accepts_connections(uri), "the server outlived its run"
    assert [p.read_text() for p in (root / "artifacts").rglob("note.txt")] == ["hello"]


@pytest.mark.slow
def test_mlflow_server_stops_when_segpipe_is_terminated(tmp_path: Path):
    import signal
    import subprocess
    import sys

    code = (
        "import sys, time; from pathlib import Path\n"
        "from pipelines.local.containers import mlflow_server\n"
        "with mlflow_server(Path(sys.argv[1])) as uri:\n"
        "    print(uri, flush=True); time.sleep(600)\n"
    )
    segpipe = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path / "server")], stdout=subprocess.PIPE, text=True
    )
    try:
        uri = segpipe.stdout.readline().strip()
        assert _accepts_connections(uri)
        segpipe.send_signal(signal.SIGTERM)
        assert segpipe.wait(timeout=60) == 128 + signal.SIGTERM
    finally:
        segpipe.kill()
    assert not _accepts_connections(uri), "the server outlived a terminated segpipe"


def test_containers_refuse_to_start_without_a_docker_engine(tiny_data, tmp_path, monkeypatch):
    pytest.importorskip("docker", reason="the docker package (segpipe run --containers)")
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path / 'no-such.sock'}")
    workdir = tmp_path / "work"
    with pytest.raises(SystemExit, match="cannot reach a Docker engine at unix://.*no-such.sock"):
        main(["run", "--containers", "--data", str(tiny_data), "--workdir", str(workdir)])
    assert not (workdir / "mlflow-server").exists(), "started a server before checking Docker"
    with pytest.raises(SystemExit, match="cannot reach a Docker engine"):
        main(["run", "--containers", "--workdir", str(workdir)])  # the sample data
    assert not (workdir / "segpipe-data").exists(), "wrote sample data before checking Docker"


def test_step_runs_record_the_process_uid_and_the_image(mlflow_store, monkeypatch):
    from mlflow.tracking import MlflowClient

    from components.common.tracking.runs import step_run

    monkeypatch.setenv("SEGPIPE_IMAGE", "segpipe-trainer:9.9.9")
    with step_run("train", "segpipe", "pipeline-1") as run:
        pass
    monkeypatch.delenv("SEGPIPE_IMAGE")
    with step_run("preprocess", "segpipe", None) as outside:
        pass
    client = MlflowClient(mlflow_store)
    tags = client.get_run(run.info.run_id).data.tags
    assert tags["segpipe.uid"] == str(os.getuid())
    assert tags["segpipe.image"] == "segpipe-trainer:9.9.9"
    tags = client.get_run(outside.info.run_id).data.tags
    assert tags["segpipe.uid"] == str(os.getuid()) and "segpipe.image" not in tags
