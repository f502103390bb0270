"""TFRecord schema: tf.train.Example with TF Model Garden segmentation keys."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # TensorFlow is imported lazily: importing this module stays cheap
    import tensorflow as tf

IMAGE_ENCODED = "image/encoded"
IMAGE_FORMAT = "image/format"
IMAGE_HEIGHT = "image/height"
IMAGE_WIDTH = "image/width"
MASK_ENCODED = "image/segmentation/class/encoded"
MASK_FORMAT = "image/segmentation/class/format"
SOURCE_ID = "image/source_id"


def encode_example(
    source_id: str, image_png: bytes, mask_png: bytes, height: int, width: int
) -> bytes:
    """Serialize one PNG image + PNG class mask pair as a tf.train.Example (no TensorFlow)."""
    from components.common.data.example_proto import example_classes

    example = example_classes()["Example"]()
    features = example.features.feature
    for key, value in (
        (IMAGE_ENCODED, image_png),
        (IMAGE_FORMAT, b"png"),
        (MASK_ENCODED, mask_png),
        (MASK_FORMAT, b"png"),
        (SOURCE_ID, source_id.encode("utf-8")),
    ):
        features[key].bytes_list.value.append(value)
    features[IMAGE_HEIGHT].int64_list.value.append(height)
    features[IMAGE_WIDTH].int64_list.value.append(width)
    return example.SerializeToString(deterministic=True)  # sorted map keys: stable bytes


def feature_spec() -> dict[str, tf.io.FixedLenFeature]:
    """The parsing spec matching `encode_example`."""
    import tensorflow as tf

    return {
        IMAGE_ENCODED: tf.io.FixedLenFeature([], tf.string),
        IMAGE_FORMAT: tf.io.FixedLenFeature([], tf.string, default_value="png"),
        IMAGE_HEIGHT: tf.io.FixedLenFeature([], tf.int64),
        IMAGE_WIDTH: tf.io.FixedLenFeature([], tf.int64),
        MASK_ENCODED: tf.io.FixedLenFeature([], tf.string),
        MASK_FORMAT: tf.io.FixedLenFeature([], tf.string, default_value="png"),
        SOURCE_ID: tf.io.FixedLenFeature([], tf.string, default_value=""),
    }


def decode_example(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
    """Parse one example into `image` (uint8 HxWx3), `mask` (uint8 HxWx1) and `source_id`."""
    import tensorflow as tf

    parsed = tf.io.parse_single_example(serialized, feature_spec())
    image = tf.io.decode_png(parsed[IMAGE_ENCODED], channels=3)
    mask = tf.io.decode_png(parsed[MASK_ENCODED], channels=1)
    return {"image": image, "mask": mask, "source_id": parsed[SOURCE_ID]}
