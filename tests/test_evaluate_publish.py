"""evaluate -> publish -> rollback against a real `mlflow server` (SQLite) on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

MLFLOW = Path(sys.executable).parent / "mlflow"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    """A real tracking server with a SQLite backend and proxied artifacts; yields its URI."""
    root = tmp_path_factory.mktemp("mlflow-server")
    port = _free_port()
    command = [str(MLFLOW), "server", "--backend-store-uri", f"sqlite:///{root / 'db.sqlite'}"]
    command += ["--artifacts-destination", str(root / "artifacts"), "--workers", "1"]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    log = open(root / "server.log", "wb")  # noqa: SIM115 - closed after the server stops
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"mlflow server did not start: {(root / 'server.log').read_text()}"
                )
            time.sleep(0.3)
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("MLFLOW_TRACKING_URI", uri)
            yield uri
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@pytest.fixture(scope="module")
def client(server):
    from mlflow.tracking import MlflowClient

    return MlflowClient(server)


@pytest.fixture(scope="module")
def trained(client, tiny_shards: Path, tmp_path_factory: pytest.TempPathFactory):
    """Two tiny models trained on the same shards (different seeds), logged to the server."""
    from components.train.__main__ import main

    models = []
    for seed in ("1", "2"):
        model_dir = tmp_path_factory.mktemp(f"model-{seed}") / "export"
        args = ["--dataset", str(tiny_shards), "--model-dir", str(model_dir), "--epochs", "1"]
        args += ["--unet-width", "4", "--unet-depth", "2", "--batch-size", "8", "--seed", seed]
        assert main(args) == 0
        experiment = client.get_experiment_by_name("segpipe").experiment_id
        runs = client.search_runs([experiment], "tags.`segpipe.step` = 'train'")
        known = {run_id for _, run_id in models}
        (run,) = [r for r in runs if r.info.run_id not in known]
        models.append((model_dir, run.info.run_id))
    return models


def _evaluate(tiny_shards, model_dir, tmp_path, capsys, *extra):
    from components.evaluate.__main__ import main

    args = ["--dataset", str(tiny_shards), "--model-dir", str(model_dir), "--model-name", "tiny"]
    args += ["--report", str(tmp_path / "report.html"), "--per-image", str(tmp_path / "img.pq")]
    capsys.readouterr()  # drop what earlier steps printed
    code = main([*args, *extra])
    return code, json.loads(capsys.readouterr().out)


def _publish(model_dir, run_id, tmp_path, pipeline_run_id, tiny_shards):
    from components.publish.__main__ import main

    args = ["--model-dir", str(model_dir), "--train-run-id", run_id, "--model-name", "tiny"]
    args += ["--export-root", str(tmp_path / "exports"), "--dataset", str(tiny_shards)]
    return main([*args, "--pipeline-run-id", pipeline_run_id])


def test_evaluate_publish_champion_and_rollback(client, trained, tiny_shards, tmp_path, capsys):
    import hashlib

    import pyarrow.parquet as pq

    (first_dir, first_run), (second_dir, second_run) = trained

    # 1. no champion yet: absolute threshold only; report and per-image table written + logged
    code, result = _evaluate(
        tiny_shards, first_dir, tmp_path, capsys, "--min-mean-iou", "0", "--pipeline-run-id", "p1"
    )
    assert code == 0 and "no champion yet" in result["reason"]
    html = (tmp_path / "report.html").read_text()
    assert "Confusion matrix" in html and "data:image/png;base64," in html
    assert "Worst images" in html and "champion IoU" not in html
    table = pq.read_table(tmp_path / "img.pq").to_pylist()
    assert (
        len(table)
        == json.loads((tiny_shards / "stats.json").read_text())["splits"]["val"]["examples"]
    )
    assert all(0.0 <= row["mean_iou"] <= 1.0 for row in table)
    evaluation = client.search_runs(
        [client.get_experiment_by_name("segpipe").experiment_id],
        "tags.`segpipe.pipeline_run_id` = 'p1' and tags.`segpipe.step` = 'evaluate'",
    )[0]
    logged = {a.path for a in client.list_artifacts(evaluation.info.run_id, "evaluation")}
    assert logged == {"evaluation/report.html", "evaluation/per_image_iou.parquet"}
    for key in ("mean_class_accuracy", "frequency_weighted_iou", "mean_f1"):
        assert key in evaluation.data.metrics

    # 2. publish: version 1 is champion, tagged, exported with a model card
    assert _publish(first_dir, first_run, tmp_path, "p1", tiny_shards) == 0
    version = client.get_model_version_by_alias("tiny", "champion")
    assert version.version == "1"
    stats_sha = hashlib.sha256((tiny_shards / "stats.json").read_bytes()).hexdigest()
    assert version.tags["segpipe.dataset_sha256"] == stats_sha
    assert version.tags["segpipe.pipeline_run_id"] == "p1"
    assert float(version.tags["metrics.mean_iou"]) == pytest.approx(
        result["metrics"]["mean_iou"], abs=1e-6
    )
    export = tmp_path / "exports" / "tiny" / "1"
    card = (export / "MODEL_CARD.md").read_text()
    assert stats_sha in card and "no champion yet" in card and "mean_iou" in card
    assert (export / "_SUCCESS").exists() and (export / "saved_model.pb").exists()
    assert _publish(first_dir, first_run, tmp_path, "p1", tiny_shards) == 0  # idempotent
    assert len(client.search_model_versions("name = 'tiny'")) == 1

    # 3. the champion is evaluated on the same shards; the same model never drops
    code, same = _evaluate(
        tiny_shards, first_dir, tmp_path, capsys, "--min-mean-iou", "0", "--max-class-drop", "0"
    )
    assert code == 0, same["reason"]
    assert same["metrics"]["champion/mean_iou"] == pytest.approx(same["metrics"]["mean_iou"])
    assert "champion IoU" in (tmp_path / "report.html").read_text()

    # 4. a second model: gate with an allowed drop of 1 always lets it through; publish it
    code, second = _evaluate(
        tiny_shards,
        second_dir,
        tmp_path,
        capsys,
        "--max-drop",
        "1",
        "--min-mean-iou",
        "0",
        "--pipeline-run-id",
        "p2",
    )
    assert code == 0 and second["metrics"]["champion/mean_iou"] == pytest.approx(
        result["metrics"]["mean_iou"]
    )
    assert _publish(second_dir, second_run, tmp_path, "p2", tiny_shards) == 0
    assert client.get_model_version_by_alias("tiny", "champion").version == "2"
    assert client.get_model_version_by_alias("tiny", "previous").version == "1"

    # 5. rollback: champion back to 1, nothing older, so `previous` goes away
    from pipelines.cli import main as segpipe

    assert segpipe(["rollback", "--model", "tiny"]) == 0
    assert client.get_model_version_by_alias("tiny", "champion").version == "1"
    assert "previous" not in client.get_registered_model("tiny").aliases
    with pytest.raises(SystemExit, match="nothing to roll back"):
        segpipe(["rollback", "--model", "tiny"])


def test_publish_refuses_a_failed_gate(client, trained, tiny_shards, tmp_path, capsys):
    model_dir, run_id = trained[1]
    code, _ = _evaluate(
        tiny_shards,
        model_dir,
        tmp_path,
        capsys,
        "--min-mean-iou",
        "1.01",
        "--pipeline-run-id",
        "failing",
    )
    assert code == 3
    with pytest.raises(RuntimeError, match="gate failed"):
        _publish(model_dir, run_id, tmp_path, "failing", tiny_shards)
    assert not (tmp_path / "exports").exists()


@pytest.mark.parametrize("step", ["evaluate", "publish"])
def test_unreachable_tracking_server_fails_fast_naming_the_uri(
    step, tiny_shards, tmp_path, monkeypatch
):
    uri = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    if step == "evaluate":
        from components.evaluate.__main__ import main

        args = ["--dataset", str(tiny_shards), "--model-dir", str(tmp_path / "no-model")]
    else:
        from components.publish.__main__ import main

        args = ["--model-dir", str(tmp_path / "no-model"), "--train-run-id", "x"]
        args += ["--export-root", str(tmp_path / "exports")]
    start = time.monotonic()
    with pytest.raises(RuntimeError, match=f"MLflow tracking server at {uri} is unreachable"):
        main(args)
    assert time.monotonic() - start < 15
    assert not (tmp_path / "exports").exists()


def test_predict_from_a_folder_and_from_the_registry(client, trained, tiny_data, tmp_path, capsys):
    import numpy as np
    from PIL import Image

    from pipelines.cli import main as segpipe

    model_dir, run_id = trained[0]
    images = sorted((tiny_data / "images").iterdir())
    local = tmp_path / "local"
    assert (
        segpipe(
            ["predict", "--model", str(model_dir), "--input", str(tiny_data / "images")]
            + ["--output", str(local)]
        )
        == 0
    )
    assert f"predict: {len(images)}/{len(images)}" in capsys.readouterr().err
    for image in images:
        mask = np.asarray(Image.open(local / f"{image.stem}_mask.png"))
        overlay = Image.open(local / f"{image.stem}_overlay.png")
        assert mask.shape == Image.open(image).size[::-1] and mask.max() < 4
        assert overlay.mode == "RGB" and overlay.size == Image.open(image).size

    from components.publish.__main__ import main as publish

    args = ["--model-dir", str(model_dir), "--train-run-id", run_id, "--model-name", "tiny-pred"]
    assert publish([*args, "--export-root", str(tmp_path / "exports")]) == 0
    registry = tmp_path / "registry"
    pattern = str(tiny_data / "images" / f"{images[0].stem[:-1]}*")  # a glob: some of them
    reference = "models:/tiny-pred@champion"
    assert (
        segpipe(["predict", "--model", reference, "--input", pattern, "--output", str(registry)])
        == 0
    )
    masks = sorted(registry.glob("*_mask.png"))
    assert masks and len(masks) < len(images)
    for mask in masks:  # the same model, downloaded from the server: the same masks
        np.testing.assert_array_equal(
            np.asarray(Image.open(mask)), np.asarray(Image.open(local / mask.name))
        )
    with pytest.raises(SystemExit, match="no image files"):
        segpipe(
            ["predict", "--model", reference, "--input", str(tmp_path / "nothing-*.png")]
            + ["--output", str(registry)]
        )
