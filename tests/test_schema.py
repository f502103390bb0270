"""tf.Example encode/decode round trip."""

import io

import numpy as np
from PIL import Image

from components.common.data.schema import MASK_ENCODED, decode_example, encode_example


def _png(array: np.ndarray, mode: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array, mode).save(buffer, format="PNG")
    return buffer.getvalue()


def test_round_trip_keeps_pixels_labels_and_id():
    import tensorflow as tf

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
    mask = rng.integers(0, 4, size=(5, 7), dtype=np.uint8)
    mask[0, 0] = 255
    serialized = encode_example("name-1", _png(image, "RGB"), _png(mask, "L"), 5, 7)

    decoded = decode_example(tf.constant(serialized))

    np.testing.assert_array_equal(decoded["image"].numpy(), image)
    np.testing.assert_array_equal(decoded["mask"].numpy()[..., 0], mask)
    assert decoded["source_id"].numpy() == b"name-1"


def test_uses_model_garden_keys():
    import tensorflow as tf

    serialized = encode_example("x", b"img", b"mask", 1, 1)
    example = tf.train.Example.FromString(serialized)
    keys = set(example.features.feature)
    assert {"image/encoded", "image/height", "image/width", "image/source_id"} <= keys
    assert example.features.feature[MASK_ENCODED].bytes_list.value == [b"mask"]
