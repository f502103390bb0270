"""`segpipe serve-manifest`: a KServe InferenceService for the champion, read strictly against
KServe v0.20.0's CRD (../shared/k8s), on exports in a bucket (the GCS emulator)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from crd_schemas import crd_errors, load_yaml, needs_crds

from components.publish.export import export_version, stage_version
from pipelines.cluster.serving import (
    ServingRefused,
    exported_versions,
    inference_service,
    serving_target,
)

ROOT = "gs://segpipe-test/exports"
ISVC_CRD = "serving.kserve.io_inferenceservices.yaml"


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    (folder / "variables").mkdir(parents=True)
    (folder / "saved_model.pb").write_bytes(b"graph")
    (folder / "variables" / "variables.index").write_bytes(b"index")
    return folder


def _export(model_dir: Path, *versions: int) -> None:
    for version in versions:
        export_version(str(model_dir), ROOT, "segpipe-unet", str(version))


def test_only_complete_numbered_versions_count(gcs, model_dir):
    _export(model_dir, 1, 3)
    stage_version(str(model_dir), ROOT, "segpipe-unet", "4")  # staged, never committed
    bucket = gcs.bucket("segpipe-test")
    bucket.blob("exports/segpipe-unet/notes/_SUCCESS").upload_from_string("")
    bucket.blob("exports/segpipe-unet/5/saved_model.pb").upload_from_string("half copied")
    assert exported_versions(ROOT, "segpipe-unet") == [1, 3]


@needs_crds
def test_the_champion_s_inference_service_is_valid_for_kserve_s_tensorflow_runtime(gcs, model_dir):
    _export(model_dir, 1, 2)
    target = serving_target(ROOT, "segpipe-unet", "champion", "2")
    manifest = inference_service(target, namespace="models", service_account="reader")
    assert crd_errors(ISVC_CRD, manifest, "v1beta1") == []
    model = manifest["spec"]["predictor"]["model"]
    assert model["storageUri"] == "gs://segpipe-test/exports/segpipe-unet"
    assert manifest["metadata"]["labels"]["segpipe.io/model-version"] == "2"
    # the runtime named is KServe's, and it serves this model format
    runtime = load_yaml("kserve-tensorflow-serving.yaml")
    assert model["runtime"] == runtime["metadata"]["name"]
    formats = {(f["name"], f["version"]) for f in runtime["spec"]["supportedModelFormats"]}
    assert (model["modelFormat"]["name"], model["modelFormat"]["version"]) in formats
    # and the schema check can fail: a field KServe does not know is refused
    manifest["spec"]["predictor"]["model"]["storageURI"] = "gs://typo"
    assert crd_errors(ISVC_CRD, manifest, "v1beta1")


def test_a_champion_tf_serving_would_not_serve_is_refused(gcs, model_dir):
    _export(model_dir, 1, 2, 3)
    with pytest.raises(ServingRefused, match="serves the highest exported version, 3"):
        serving_target(ROOT, "segpipe-unet", "champion", "2")  # after a rollback
    with pytest.raises(ServingRefused, match="4/ is not a complete export"):
        serving_target(ROOT, "segpipe-unet", "champion", "4")
    target = serving_target(ROOT, "segpipe-unet", "champion", "3")
    with pytest.raises(ServingRefused, match="not a valid InferenceService name"):
        inference_service(target, name="Segpipe_UNet")


def test_the_command_reads_the_champion_from_the_registry(gcs, model_dir, mlflow_store, tmp_path):
    from mlflow.tracking import MlflowClient

    from pipelines.cli.main import main

    client = MlflowClient(mlflow_store)
    client.create_registered_model("segpipe-unet")
    for _ in range(2):
        client.create_model_version("segpipe-unet", "file:///nowhere")
    client.set_registered_model_alias("segpipe-unet", "champion", "2")
    _export(model_dir, 1, 2)
    output = tmp_path / "isvc.yaml"
    assert main(["serve-manifest", "--export-root", ROOT, "-o", str(output)]) == 0
    manifest = yaml.safe_load(output.read_text())
    assert manifest["kind"] == "InferenceService"
    assert manifest["metadata"]["labels"]["segpipe.io/model-version"] == "2"

    client.set_registered_model_alias("segpipe-unet", "champion", "1")  # rolled back
    with pytest.raises(SystemExit, match="serves the highest exported version, 2"):
        main(["serve-manifest", "--export-root", ROOT])
    with pytest.raises(SystemExit, match="must be a bucket"):
        main(["serve-manifest", "--export-root", str(tmp_path / "exports")])
    with pytest.raises(SystemExit, match="no 'champion' version"):
        main(["serve-manifest", "--export-root", ROOT, "--model", "other"])
