"""The export folder as an MLflow model: an MLmodel file with the serving signature's schema."""

from __future__ import annotations

import os

import numpy as np

from components.common.data.dataset import DatasetInfo

MLMODEL_FILE = "MLmodel"
ARTIFACT_PATH = "model"  # where train logs the folder in its run; what publish registers


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
    `mlflow.tensorflow.load_model` load it; the signature lets the registry show its schema.
    The file is part of the folder's digest, which evaluate and publish compare.
    """
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
            "[H, W] uint8 at its size; segment: images uint8 [N, H, W, 3] -> class_ids [N, H, W]",
        },
    )
    model.add_flavor("tensorflow", saved_model_dir=".", model_type="tf2-module", code=None)
    model.save(os.path.join(model_dir, MLMODEL_FILE))
