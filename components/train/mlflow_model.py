"""The export folder as an MLflow model: an MLmodel file with the serving signature's schema."""

from __future__ import annotations

import importlib.util
import os
import shutil

import numpy as np

from components.common.data.dataset import DatasetInfo

MLMODEL_FILE = "MLmodel"
ARTIFACT_PATH = "model"  # where train logs the folder in its run; what publish registers
CODE_DIR = "code"  # in the model folder: the pyfunc loader, on sys.path when MLflow loads it
PYFUNC_MODULE = "segpipe_pyfunc"
PYFUNC_SOURCE = f"components.train.serving.{PYFUNC_MODULE}"  # copied as code/segpipe_pyfunc.py


def serving_signature():
    """`serving_default` as MLflow sees it: encoded image bytes in, a class-id map out."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema, TensorSpec

    return ModelSignature(
        inputs=Schema([ColSpec("binary", "image_bytes")]),
        outputs=Schema([TensorSpec(np.dtype(np.uint8), (-1, -1), "class_ids")]),
    )


def write_mlmodel(model_dir: str, run_id: str, info: DatasetInfo) -> None:
    """Write `model_dir`/MLmodel, so the folder, as logged and registered, is an MLflow model.

    The `tensorflow` flavor (a TF2 SavedModel at the folder's root) lets
    `mlflow.tensorflow.load_model` load it; the `python_function` flavor (the loader in
    `code/segpipe_pyfunc.py`) lets `mlflow models serve` and `mlflow.pyfunc.load_model` answer
    encoded images with class maps; the signature lets the registry show its schema.
    The files are part of the folder's digest, which evaluate and publish compare.
    """
    from mlflow import pyfunc
    from mlflow.models import Model

    model = Model(
        artifact_path=ARTIFACT_PATH,
        run_id=run_id,
        signature=serving_signature(),
        metadata={
            "class_names": list(info.class_names),
            "num_classes": info.num_classes,
            "ignore_label": info.ignore_label,
            "signatures": "serving_default: one encoded image (PNG, JPEG, ...) -> class_ids "
            "[H, W] uint8 at its size; segment: images uint8 [N, H, W, 3] -> class_ids [N, H, W]; "
            "segment_no_tta: as segment, in one pass without the test-time augmentation",
        },
    )
    model.add_flavor("tensorflow", saved_model_dir=".", model_type="tf2-module", code=None)
    os.makedirs(os.path.join(model_dir, CODE_DIR), exist_ok=True)
    loader = importlib.util.find_spec(PYFUNC_SOURCE).origin  # copied, not imported
    shutil.copyfile(loader, os.path.join(model_dir, CODE_DIR, f"{PYFUNC_MODULE}.py"))
    pyfunc.add_to_model(model, loader_module=PYFUNC_MODULE, code=CODE_DIR)
    model.save(os.path.join(model_dir, MLMODEL_FILE))
