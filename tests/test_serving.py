"""The champion served the standard way: `mlflow models serve` answers a POSTed PNG with the
class map `segpipe predict` writes for it."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipelines.local.mlflow_server import free_port

pytestmark = pytest.mark.slow  # two kfp.local runs (the local_runs fixture) and a server

MODEL = "models:/segpipe-unet@champion"


def _wait_ready(url: str, server: subprocess.Popen, log: Path, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"mlflow models serve exited {server.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/ping", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(1)
    pytest.fail(f"mlflow models serve not ready after {timeout_s}s:\n{log.read_text()}")


def _post(url: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(
        f"{url}/invocations",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def test_mlflow_models_serve_answers_a_png_with_segpipe_predicts_mask(
    local_runs, tiny_data, tmp_path
):
    from pipelines.cli.main import main

    _, uri, _ = local_runs
    image = sorted((tiny_data / "images").glob("*.png"))[0]
    # as in an activated environment: the server starts `uvicorn` from PATH
    path = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "PATH": path}
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    command = [
        *(sys.executable, "-m", "mlflow", "models", "serve", "-m", MODEL),
        *("--env-manager", "local", "--host", "127.0.0.1", "--port", str(port)),
    ]
    with open(log, "w") as output:
        server = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        _wait_ready(url, server, log)
        png = base64.b64encode(image.read_bytes()).decode()
        status, answer = _post(
            url, {"dataframe_split": {"columns": ["image_bytes"], "data": [[png]]}}
        )
        assert status == 200, answer
        (prediction,) = answer["predictions"]
        served = np.array(prediction["class_ids"], np.uint8)
        status, refused = _post(
            url, {"dataframe_split": {"columns": ["image_bytes"], "data": [["bm90IGFuIGltYWdl"]]}}
        )
        assert status >= 400 and "not a decodable image" in json.dumps(refused)
    finally:
        server.terminate()
        server.wait(timeout=30)

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        args = ["predict", "--model", MODEL, "--input", str(image), "--output", str(tmp_path)]
        assert main(args) == 0
    predicted = np.array(Image.open(tmp_path / f"{image.stem}_mask.png"))
    assert served.shape == predicted.shape == Image.open(image).size[::-1]
    np.testing.assert_array_equal(served, predicted)
