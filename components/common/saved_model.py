"""The SavedModel contract: what train exports and evaluate and predict read (signature names,
their inputs and output, the model info file, the loaders)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

SERVING_SIGNATURE = "serving_default"  # one encoded image (PNG, JPEG, ...) -> its class map
SEGMENT_SIGNATURE = "segment"  # uint8 images [N, H, W, 3] -> class maps [N, H, W]
SEGMENT_NO_TTA_SIGNATURE = "segment_no_tta"  # the same in one pass, without test-time augmentation
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
    """The model info file: classes, the model's input size, whether it sees grey images, the
    test-time augmentation its signatures apply (the mirror, the input-size scales), and the
    signatures it has."""
    info = {
        "signatures": [SERVING_SIGNATURE, SEGMENT_SIGNATURE, SEGMENT_NO_TTA_SIGNATURE],
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


def has_tta(info: dict[str, Any]) -> bool:
    """Whether an export's model info says its `segment` applies test-time augmentation."""
    return bool(info.get("flip_tta")) or list(info.get("tta_scales", [1.0])) != [1.0]


def segmenter(signatures: Any, name: str = SEGMENT_SIGNATURE) -> Callable[[Any], Any]:
    """`segment` (or `name`, as `segment_no_tta`) as a function: uint8 images [N, H, W, 3] ->
    class ids [N, H, W] (a tensor)."""
    segment = signatures[name]
    return lambda images: segment(**{IMAGES: images})[CLASS_IDS]


def segment_signature(export_dir: str, info: dict[str, Any], tta: bool = True) -> str:
    """The signature that segments with (`tta`) or without the export's test-time augmentation,
    from its model info `info`; raises LookupError for an older export that applies it and
    cannot leave it out."""
    if tta:
        return SEGMENT_SIGNATURE
    if SEGMENT_NO_TTA_SIGNATURE in info.get("signatures", []):
        return SEGMENT_NO_TTA_SIGNATURE
    if not has_tta(info):
        return SEGMENT_SIGNATURE  # an older export: its `segment` is one pass already
    raise LookupError(
        f"{export_dir} applies test-time augmentation and, exported by an older segpipe, has no "
        f"{SEGMENT_NO_TTA_SIGNATURE} signature to leave it out: predict with it, or export again"
    )


def load_segmenter(export_dir: str) -> Callable[[Any], Any]:
    """The `segment` function of the model exported to `export_dir`."""
    return segmenter(load_signatures(export_dir))
