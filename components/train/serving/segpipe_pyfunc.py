"""The MLflow python_function flavor of a segpipe model: encoded images in, class maps out.

Copied into each model folder (code/segpipe_pyfunc.py) and named by its MLmodel, so that
`mlflow models serve` and `mlflow.pyfunc.load_model` need TensorFlow, NumPy and pandas, not
segpipe. Imports only those; TensorFlow when the model loads.

Request (the scoring server decodes base64 for the binary `image_bytes` column):
    {"dataframe_split": {"columns": ["image_bytes"], "data": [["<base64 PNG or JPEG>"]]}}
Response, one record per image, class indices at the image's size:
    {"predictions": [{"class_ids": [[0, 0, 2, ...], ...]}]}
"""

from __future__ import annotations

import base64

import numpy as np
import pandas as pd

IMAGE_BYTES = "image_bytes"
CLASS_IDS = "class_ids"


class SegmentationModel:
    """The export's `serving_default` signature, one image at a time."""

    def __init__(self, path: str) -> None:
        import tensorflow as tf

        self._tf = tf
        self._serve = tf.saved_model.load(path).signatures["serving_default"]

    def predict(self, model_input, params=None) -> pd.DataFrame:
        """A frame with a column `image_bytes` (bytes, or base64 text) -> one row per image
        with `class_ids`, a uint8 [height, width] array."""
        if isinstance(model_input, pd.DataFrame):
            if IMAGE_BYTES not in model_input.columns:
                raise ValueError(f"the input needs a column {IMAGE_BYTES!r} of encoded images")
            images = model_input[IMAGE_BYTES]
        else:
            images = model_input
        masks = [self._segment(image) for image in images]
        return pd.DataFrame({CLASS_IDS: masks})

    def _segment(self, image) -> np.ndarray:
        data = bytes(image) if isinstance(image, (bytes, bytearray)) else base64.b64decode(image)
        try:
            result = self._serve(image_bytes=self._tf.constant(data))
        except self._tf.errors.InvalidArgumentError as error:
            raise ValueError(
                f"not a decodable image ({len(data)} bytes): {error.message}"
            ) from None
        return result[CLASS_IDS].numpy()


def _load_pyfunc(path: str) -> SegmentationModel:
    """MLflow's entry point: `path` is the model folder, a SavedModel at its root."""
    return SegmentationModel(path)
