"""train -> evaluate -> publish through their CLIs on tiny shards, with a real MLflow store."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from mlflow_stores import copy_store
from PIL import Image

pytestmark = pytest.mark.slow  # trains and publishes through the step CLIs


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, mlflow_db_template: Path):
    from mlflow.tracking import MlflowClient

    root = tmp_path_factory.mktemp("mlflow")
    uri = copy_store(mlflow_db_template, root / "mlflow.db")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        MlflowClient(uri).create_experiment(
            "segpipe", artifact_location=(root / "artifacts").as_uri()
        )
        yield MlflowClient(uri)


@pytest.fixture(scope="module")
def trained(store, tiny_shards: Path, tmp_path_factory: pytest.TempPathFactory):
    from components.train.__main__ import main

    model_dir = tmp_path_factory.mktemp("model") / "export"
    args = ["--dataset", str(tiny_shards), "--model-dir", str(model_dir), "--epochs", "2"]
    assert main([*args, "--unet-width", "4", "--unet-depth", "2", "--batch-size", "4"]) == 0
    (run,) = store.search_runs(
        [store.get_experiment_by_name("segpipe").experiment_id], "tags.`segpipe.step` = 'train'"
    )
    return model_dir, run.info.run_id


def test_train_logs_params_epochs_and_model(store, trained):
    model_dir, run_id = trained
    run = store.get_run(run_id)
    assert run.data.params["epochs"] == "2"
    history = store.get_metric_history(run_id, "val_mean_iou")
    assert [m.step for m in history] == [1, 2]
    # the training batches' IoU is named apart from evaluate's `mean_iou` of the model
    assert "train_mean_iou" in run.data.metrics and "mean_iou" not in run.data.metrics
    artifacts = {a.path for a in store.list_artifacts(run_id, "model")}
    assert "model/saved_model.pb" in artifacts
    assert (model_dir / "saved_model.pb").exists()
    assert run.data.tags["mlflow.parentRunId"]


def test_serving_signature_takes_png_bytes_of_any_size(trained):
    import tensorflow as tf

    model_dir, _ = trained
    serve = tf.saved_model.load(str(model_dir)).signatures["serving_default"]
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((45, 70, 3), np.uint8), "RGB").save(buffer, format="PNG")
    class_ids = serve(image_bytes=tf.constant(buffer.getvalue()))["class_ids"].numpy()
    assert class_ids.shape == (45, 70)
    assert class_ids.max() < 4


def test_logged_model_is_an_mlflow_model_with_the_serving_signature(store, trained):
    import mlflow
    import tensorflow as tf
    from mlflow.models import Model

    model_dir, run_id = trained
    logged = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="model")
    model = Model.load(logged)
    assert model.run_id == run_id
    assert model.signature.inputs.to_dict() == [
        {"type": "binary", "name": "image_bytes", "required": True}
    ]
    (output,) = model.signature.outputs.to_dict()
    assert output["name"] == "class_ids"
    assert output["tensor-spec"] == {"dtype": "uint8", "shape": (-1, -1)}
    assert model.metadata["num_classes"] == 4
    # the flavor names a real loader: MLflow's TensorFlow flavor loads the SavedModel itself
    loaded = mlflow.tensorflow.load_model(f"runs:/{run_id}/model")
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((20, 30, 3), np.uint8), "RGB").save(buffer, format="PNG")
    serve = loaded.signatures["serving_default"]
    assert serve(image_bytes=tf.constant(buffer.getvalue()))["class_ids"].shape == (20, 30)
    assert (model_dir / "MLmodel").exists()  # the folder evaluate scores and publish checks


def test_logged_model_loads_as_a_pyfunc_that_segments_encoded_images(store, trained):
    """The python_function flavor: what `mlflow models serve` runs. Same class map as the
    SavedModel's own signature, for bytes and for base64 text; a non-image is refused."""
    import base64

    import mlflow
    import pandas as pd
    import tensorflow as tf

    model_dir, run_id = trained
    buffer = io.BytesIO()
    pixels = np.random.default_rng(0).integers(0, 255, (24, 40, 3), dtype=np.uint8)
    Image.fromarray(pixels, "RGB").save(buffer, format="PNG")
    png = buffer.getvalue()
    serve = tf.saved_model.load(str(model_dir)).signatures["serving_default"]
    expected = serve(image_bytes=tf.constant(png))["class_ids"].numpy()

    loaded = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")
    frame = pd.DataFrame({"image_bytes": [png, base64.b64encode(png).decode()]})
    predicted = loaded.predict(frame)
    assert list(predicted.columns) == ["class_ids"]
    for mask in predicted["class_ids"]:
        np.testing.assert_array_equal(mask, expected)
    with pytest.raises(ValueError, match="not a decodable image"):
        loaded.predict(pd.DataFrame({"image_bytes": [b"not an image"]}))


def test_evaluate_gate_exit_codes_and_metrics(store, tiny_shards, trained, capsys):
    from components.evaluate.__main__ import main

    model_dir, _ = trained
    args = ["--dataset", str(tiny_shards), "--model-dir", str(model_dir)]
    assert main([*args, "--min-mean-iou", "0.0"]) == 0
    passed = json.loads(capsys.readouterr().out)
    assert passed["passed"] is True
    assert 0.0 <= passed["metrics"]["mean_iou"] <= 1.0
    assert main([*args, "--min-mean-iou", "1.0"]) == 3
    failed = json.loads(capsys.readouterr().out)
    assert "below the minimum" in failed["reason"]
    assert failed["metrics"]["mean_iou"] == pytest.approx(passed["metrics"]["mean_iou"])


def test_publish_registers_champion_exports_and_is_idempotent(
    store, tiny_shards, trained, tmp_path, capsys
):
    from components.evaluate.__main__ import main as evaluate
    from components.publish.__main__ import main

    model_dir, run_id = trained
    judged = ["--dataset", str(tiny_shards), "--model-dir", str(model_dir), "--model-name", "tiny"]
    assert evaluate([*judged, "--min-mean-iou", "0.0", "--train-run-id", run_id]) == 0
    args = ["--model-dir", str(model_dir), "--train-run-id", run_id]
    args += ["--export-root", str(tmp_path / "exports"), "--model-name", "tiny"]
    assert main(args) == 0
    assert main(args) == 0
    versions = store.search_model_versions("name = 'tiny'")
    assert len(versions) == 1
    assert store.get_model_version_by_alias("tiny", "champion").run_id == run_id
    export = tmp_path / "exports" / "tiny" / str(versions[0].version)
    assert (export / "_SUCCESS").exists()
    assert (export / "saved_model.pb").exists()
    # the registered version is an MLflow model: the registry shows its schema
    import mlflow
    from mlflow.models import Model

    source = store.get_model_version_download_uri("tiny", versions[0].version)
    registered = Model.load(mlflow.artifacts.download_artifacts(artifact_uri=source))
    assert registered.signature.outputs.input_names() == ["class_ids"]


def test_model_input_size_may_differ_from_the_shards(store, tiny_shards, tmp_path):
    import tensorflow as tf

    from components.train.__main__ import main

    model_dir = tmp_path / "export"
    args = ["--dataset", str(tiny_shards), "--model-dir", str(model_dir), "--epochs", "1"]
    args += [
        "--unet-width",
        "4",
        "--unet-depth",
        "2",
        "--input-height",
        "16",
        "--input-width",
        "24",
    ]
    assert main(args) == 0
    info = json.loads((model_dir / "segpipe_model.json").read_text())
    assert (info["image_height"], info["image_width"]) == (16, 24)
    segment = tf.saved_model.load(str(model_dir)).signatures["segment"]
    class_ids = segment(images=tf.zeros([2, 32, 32, 3], tf.uint8))["class_ids"]
    assert class_ids.shape == (2, 32, 32)  # scored at the shards' (label) resolution
