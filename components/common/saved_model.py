"""The SavedModel contract: what train exports and evaluate and predict read (signature names,
their inputs and output, the model info file, the loaders)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

SERVING_SIGNATURE = "serving_default"  # one encoded image (PNG, JPEG, ...) -> its class map
SEGMENT_SIGNATURE = "segment"  # uint8 images [N, H, W, 3] -> class maps [N, H, W]
IMAGE_BYTES = "image_bytes"  # serving_default's input
IMAGES = "images"  # segment's input, pixels as the shards hold them
CLASS_IDS = "class_ids"  # both outputs: uint8 class index per pixel, at the input's size
MODEL_INFO_FILE = "segpipe_model.json"  # next to the SavedModel: what predict needs to know


def write_model_info(
    export_dir: str,
    *,
    num_classes: int,
    class_names: tuple[str, ...],
    image_height: int,
    image_width: int,
    grayscale: bool,
    flip_tta: bool = False,
    tta_scales: tuple[float, ...] | list[float] = (1.0,),
) -> None:
    """The model info file: classes, the model's input size, whether it sees grey images, and
    the test-time augmentation its signatures apply (the mirror, the input-size scales)."""
    info = {
        "flip_tta": flip_tta,
        "tta_scales": list(tta_scales),
        "num_classes": num_classes,
        "class_names": list(class_names),
        "image_height": image_height,
        "image_width": image_width,
        "grayscale": grayscale,
    }
    with open(os.path.join(export_dir, MODEL_INFO_FILE), "w") as handle:
        json.dump(info, handle, indent=2)


def read_model_info(export_dir: str) -> dict[str, Any]:
    """The export's model info; empty for an export without one."""
    path = os.path.join(export_dir, MODEL_INFO_FILE)
    if not os.path.isfile(path):
        return {}
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def load_signatures(export_dir: str) -> Any:
    """The export's serving signatures, by name (TensorFlow is imported here, not before)."""
    import tensorflow as tf

    return tf.saved_model.load(export_dir).signatures


def segmenter(signatures: Any) -> Callable[[Any], Any]:
    """`segment` as a function: uint8 images [N, H, W, 3] -> class ids [N, H, W] (a tensor)."""
    segment = signatures[SEGMENT_SIGNATURE]
    return lambda images: segment(**{IMAGES: images})[CLASS_IDS]


def load_segmenter(export_dir: str) -> Callable[[Any], Any]:
    """The `segment` function of the model exported to `export_dir`."""
    return segmenter(load_signatures(export_dir))
