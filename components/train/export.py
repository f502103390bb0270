"""SavedModel export with serving signatures that take raw bytes or images of any size."""

from __future__ import annotations

import os

import keras
import tensorflow as tf

from components.common.data.dataset import DatasetInfo
from components.common.saved_model import (
    CLASS_IDS,
    IMAGE_BYTES,
    IMAGES,
    SEGMENT_NO_TTA_SIGNATURE,
    SEGMENT_SIGNATURE,
    SERVING_SIGNATURE,
    write_model_info,
)
from components.train.data import resize_image
from components.train.warm_start import LAYER_WEIGHTS_FILE, save_layer_weights


def export_model(
    model: keras.Model,
    export_dir: str,
    info: DatasetInfo,
    flip_tta: bool = False,
    size: tuple[int, int] | None = None,
    scales: tuple[float, ...] = (1.0,),
) -> None:
    """Write a SavedModel with `serving_default` (encoded image bytes), `segment` (uint8 batch)
    and `segment_no_tta` (the same in one pass, for throughput).

    Both resize to the model's input size (`size` for a model that takes any) and return the
    class map at the caller's size; with `flip_tta`, from the mean of the logits of each
    image and its left-right mirror; with `scales`, of the image resized to each multiple of
    that size (a model that takes any size only), all brought to the caller's size first.
    `segment` takes pixels as the shards hold them: for a grayscale data set, grey in all
    three channels; `serving_default` makes colour images grey itself. `segment_no_tta` runs the
    model once at `size`, without the mirror or the other scales. The layer weights go
    alongside, for warm starts of later models.
    """
    height, width = size or model.input_shape[1:3]
    if height is None or width is None:
        raise ValueError(f"{model.name} takes images of any size: say the size to resize to")
    if scales != (1.0,) and model.input_shape[1:3] != (None, None):
        raise ValueError(f"test-time scales {scales} need a model that takes any size")
    sizes = [(round(height * s), round(width * s)) for s in scales]

    segment = _segment_function(model, sizes, flip_tta)

    @tf.function(input_signature=[tf.TensorSpec([], tf.string, name=IMAGE_BYTES)])
    def serve_bytes(image_bytes):
        image = tf.io.decode_image(image_bytes, channels=3, expand_animations=False)
        if info.grayscale:  # as the shards: one grey channel, read back as three
            grey = tf.image.rgb_to_grayscale(image)
            image = tf.image.grayscale_to_rgb(grey)
        return {CLASS_IDS: segment(image[tf.newaxis])[CLASS_IDS][0]}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(SERVING_SIGNATURE, serve_bytes)
    archive.add_endpoint(SEGMENT_SIGNATURE, segment)
    archive.add_endpoint(
        SEGMENT_NO_TTA_SIGNATURE, _segment_function(model, [(height, width)], False)
    )
    archive.write_out(export_dir, verbose=False)
    save_layer_weights(model, os.path.join(export_dir, LAYER_WEIGHTS_FILE))
    write_model_info(
        export_dir,
        num_classes=info.num_classes,
        class_names=info.class_names,
        image_height=height,
        image_width=width,
        grayscale=info.grayscale,
        flip_tta=flip_tta,
        tta_scales=list(scales),
    )


def _segment_function(model: keras.Model, sizes: list[tuple[int, int]], flip_tta: bool):
    """uint8 images -> class ids at their size: the mean logits of the model at each of `sizes`
    (and of each mirror where `flip_tta`), brought back to the images' size."""

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name=IMAGES)])
    def segment(images):
        size = tf.shape(images)[1:3]
        views = []
        for scaled in sizes:
            # the training resize: any other would show the model inputs it never learned from
            resized = resize_image(tf.cast(images, tf.float32), scaled)
            views.append(tf.image.resize(model(resized, training=False), size, "bilinear"))
            if flip_tta:  # the mirror's logits, mirrored back
                mirrored = model(tf.reverse(resized, axis=[2]), training=False)
                views.append(tf.image.resize(tf.reverse(mirrored, axis=[2]), size, "bilinear"))
        logits = tf.add_n(views) / len(views)
        return {CLASS_IDS: tf.cast(tf.argmax(logits, axis=-1), tf.uint8)}

    return segment
