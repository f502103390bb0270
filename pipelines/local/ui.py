"""Where a run's MLflow UI is: the links segpipe prints, and `segpipe ui`, which serves them
for a local store."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from components.common.tracking.runs import runs_link

UI_PORT = 5000  # where `segpipe ui` (and `make ui`) serve a local store by default


def serves_its_own_ui(uri: str) -> bool:
    """An http(s) tracking server serves the MLflow UI itself, at its own address."""
    return uri.startswith(("http://", "https://"))


def ui_url(uri: str, port: int = UI_PORT) -> str:
    """The address of the UI that shows `uri`'s runs (`segpipe ui --port` for a local store)."""
    return uri.rstrip("/") if serves_its_own_ui(uri) else f"http://127.0.0.1:{port}"


def browse_hint(uri: str, artifacts: Path | None = None) -> str:
    """What to do to open the links: nothing for a server; else the `segpipe ui` command for
    this store, with absolute paths, so that it works from any folder."""
    if serves_its_own_ui(uri):
        return f"open the links above (the tracking server at {ui_url(uri)} serves the UI)"
    command = f"segpipe ui --store {uri}"
    if artifacts is not None:
        command += f" --artifacts {artifacts.resolve()}"
    return f"{command}   (serves the links above)"


def experiment_link(uri: str, experiment: str, port: int = UI_PORT) -> str:
    """The experiment's runs table (segpipe's shared view, model-training mode), or the UI's
    root when the experiment does not exist yet."""
    from mlflow.tracking import MlflowClient

    found = MlflowClient(uri).get_experiment_by_name(experiment)
    base = ui_url(uri, port)
    return runs_link(base, found.experiment_id) if found is not None else base


def serve(uri: str, port: int, artifacts: Path | None = None) -> int:
    """`mlflow ui` on 127.0.0.1:`port` over the local store `uri`, until interrupted."""
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    if artifacts is not None:
        command += ["--artifacts-destination", str(artifacts.resolve())]
    try:
        return subprocess.call(command, env=dict(os.environ))
    except KeyboardInterrupt:
        return 0
