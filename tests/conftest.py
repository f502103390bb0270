"""Shared fixtures: tiny generated data sets and an isolated MLflow store per test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from mlflow_stores import copy_store

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Tests using these are slow by nature (a real MLflow server, a fresh venv, two kfp.local runs):
# marked so whatever the module says.
SLOW_FIXTURES = {"mlflow_server", "core_python", "local_runs"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def mlflow_db_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty MLflow SQLite database with every migration applied, made once per session:
    a new store spends 5-8 s migrating, a copy of this one is ready in a tenth of a second."""
    from mlflow.tracking import MlflowClient

    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").get_experiment("0")  # creates and migrates the store
    return path


@pytest.fixture
def mlflow_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mlflow_db_template: Path) -> str:
    """A fresh SQLite tracking store, with artifacts under tmp_path, exported to subprocesses."""
    from mlflow.tracking import MlflowClient

    uri = copy_store(mlflow_db_template, tmp_path / "mlflow.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    MlflowClient(uri).create_experiment(
        "segpipe", artifact_location=(tmp_path / "mlartifacts").as_uri()
    )
    return uri


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 synthetic pairs at 64x64."""
    from pipelines.sample_data import write_sample_data

    directory = tmp_path_factory.mktemp("tiny-data")
    write_sample_data(str(directory), count=24, seed=7, size=64)
    return directory


@pytest.fixture(scope="session")
def tiny_shards(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tiny_data preprocessed to 32x32 shards (in-memory Beam runner: fast for tiny inputs)."""
    from components.common.settings.config import PreprocessConfig
    from components.preprocess.pipeline import run_preprocess

    output = tmp_path_factory.mktemp("tiny-shards")
    config = PreprocessConfig(
        image_height=32,
        image_width=32,
        val_fraction=0.3,
        num_shards=2,
        direct_running_mode="in_memory",
    )
    run_preprocess(str(tiny_data), str(output), config)
    return output


@pytest.fixture
def gcs(monkeypatch: pytest.MonkeyPatch):
    """gcp-storage-emulator on 127.0.0.1 with a bucket `segpipe-test`; yields a storage client."""
    from gcp_storage_emulator.server import create_server
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    from pipelines.local.mlflow_server import free_port

    port = free_port()
    server = create_server("127.0.0.1", port, in_memory=True)
    server.start()
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{port}")
    client = storage.Client(project="test", credentials=AnonymousCredentials())
    client.create_bucket("segpipe-test")
    try:
        yield client
    finally:
        server.stop()


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory, mlflow_db_template: Path):
    """A real `mlflow server` (SQLite, proxied artifacts) on 127.0.0.1; yields its URI."""
    from pipelines.local.mlflow_server import MlflowServer

    root = tmp_path_factory.mktemp("mlflow-server")
    copy_store(mlflow_db_template, root / "db.sqlite")
    store = f"sqlite:///{root / 'db.sqlite'}"
    with MlflowServer(store, root / "server.log", root / "artifacts") as server:
        yield server.uri


TINY_RUN = [
    *("--param", "image_height=32", "--param", "image_width=32", "--param", "epochs=2"),
    *("--param", "unet_width=4", "--param", "unet_depth=2", "--param", "batch_size=8"),
    *("--param", "val_fraction=0.4"),
]


@pytest.fixture(scope="session")
def local_runs(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory):
    """Two `segpipe run`s on tiny_data into one store: the first publishes a champion, the
    second's gate cannot pass. Yields (workdir, tracking URI, [each run's terminal output])."""
    import contextlib
    import io

    from pipelines.cli.main import main

    workdir = tmp_path_factory.mktemp("local-runs")
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    base = ["run", "--data", str(tiny_data), "--workdir", str(workdir), *TINY_RUN]
    outputs = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        for gate in ("min_mean_iou=0.0", "min_mean_iou=1.0"):
            terminal = io.StringIO()
            with contextlib.redirect_stdout(terminal):
                assert main([*base, "--param", gate]) == 0
            outputs.append(terminal.getvalue())
        yield workdir, uri, outputs
