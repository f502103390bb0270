"""The MLflow server as docker/mlflow.yaml runs it (basic-auth app, the README's basic_auth.ini),
started for real on 127.0.0.1: who may promote a model."""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from mlflow_stores import copy_store
from stand_ins import record_evaluation, stand_in_train_run

from components.common.settings.config import RunContext
from pipelines.local.mlflow_server import MlflowServer

pytestmark = pytest.mark.slow  # a real basic-auth MLflow server

MLFLOW = Path(sys.executable).parent / "mlflow"
ADMIN_PASSWORD = "admin-pw-8d1c2f7a"


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory, mlflow_db_template: Path):
    """`mlflow server --app-name basic-auth` with the auth config the manifest mounts."""
    pytest.importorskip("flask_wtf", reason="the basic-auth app needs mlflow[auth] (Flask-WTF)")
    root = tmp_path_factory.mktemp("mlflow-auth")
    copy_store(mlflow_db_template, root / "db.sqlite")
    ini = root / "basic_auth.ini"
    ini.write_text(
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = sqlite:///{root / 'auth.db'}\n"
        "admin_username = admin\n"
        f"admin_password = {ADMIN_PASSWORD}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        # not in the manifest's template: saves a PBKDF2 check per request on a busy test box
        "auth_cache_ttl_seconds = 60\n"
    )
    env = {
        **os.environ,
        "MLFLOW_AUTH_CONFIG_PATH": str(ini),
        "MLFLOW_FLASK_SERVER_SECRET_KEY": "test-secret-key",
    }
    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_URI"):
        env.pop(name, None)
    store = f"sqlite:///{root / 'db.sqlite'}"
    server = MlflowServer(
        store, root / "server.log", root / "artifacts", extra=["--app-name", "basic-auth"], env=env
    )
    with server:
        yield server.uri


def _as(monkeypatch: pytest.MonkeyPatch, uri: str, user: str, password: str):
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", user)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)
    return MlflowClient(uri)


def test_only_users_with_edit_on_the_model_can_move_champion(
    auth_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.server import get_app_client

    # no credentials: nothing is served but /health
    with pytest.raises(urllib.error.HTTPError) as denied:
        urllib.request.urlopen(f"{auth_server}/api/2.0/mlflow/experiments/search?max_results=1")
    assert denied.value.code == 401

    _as(monkeypatch, auth_server, "admin", ADMIN_PASSWORD)
    admin = get_app_client("basic-auth", tracking_uri=auth_server)
    admin.create_user("pipeline", "pipeline-password-1")
    admin.create_user("viewer", "viewer-password-1")

    # the pipeline's user creates the experiment and the model (MANAGE on both) and promotes
    _as(monkeypatch, auth_server, "pipeline", "pipeline-password-1")
    mlflow.set_tracking_uri(auth_server)
    mlflow.set_experiment("segpipe")
    model = tmp_path / "model"
    model.mkdir()
    (model / "saved_model.pb").write_bytes(b"graph")
    from components.publish.publisher import publish

    run_id = stand_in_train_run(model)
    record_evaluation(model, "p1", "none")
    run = RunContext("segpipe", "p1", model_name="m")
    assert publish(str(model), run_id, run, str(tmp_path / "exports")).version == "1"

    # anyone else only reads (default_permission = READ): moving an alias is refused
    viewer = _as(monkeypatch, auth_server, "viewer", "viewer-password-1")
    assert viewer.get_model_version_by_alias("m", "champion").version == "1"
    with pytest.raises(MlflowException, match="Permission denied|PERMISSION_DENIED"):
        viewer.set_registered_model_alias("m", "champion", "1")

    # an admin grants EDIT on the registered model: now that user may move aliases
    _as(monkeypatch, auth_server, "admin", ADMIN_PASSWORD)
    admin.grant_user_permission("viewer", "registered_model", "m", "EDIT")
    viewer = _as(monkeypatch, auth_server, "viewer", "viewer-password-1")
    viewer.set_registered_model_alias("m", "staging", "1")
    assert viewer.get_model_version_by_alias("m", "staging").version == "1"
