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
    """Serialize one PNG image + PNG class mask pair as a tf.train.Example."""
    from tensorflow.core.example import example_pb2, feature_pb2

    def _bytes(value: bytes) -> feature_pb2.Feature:
        return feature_pb2.Feature(bytes_list=feature_pb2.BytesList(value=[value]))

    def _int(value: int) -> feature_pb2.Feature:
        return feature_pb2.Feature(int64_list=feature_pb2.Int64List(value=[value]))

    features = {
        IMAGE_ENCODED: _bytes(image_png),
        IMAGE_FORMAT: _bytes(b"png"),
        IMAGE_HEIGHT: _int(height),
        IMAGE_WIDTH: _int(width),
        MASK_ENCODED: _bytes(mask_png),
        MASK_FORMAT: _bytes(b"png"),
        SOURCE_ID: _bytes(source_id.encode("utf-8")),
    }
    example = example_pb2.Example(features=feature_pb2.Features(feature=features))
    return example.SerializeToString()


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
