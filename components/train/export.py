"""SavedModel export with serving signatures that take raw bytes or images of any size."""

from __future__ import annotations

import json
import os

import keras
import tensorflow as tf

from components.common.dataset import DatasetInfo
from components.train.data import resize_image
from components.train.warm_start import LAYER_WEIGHTS_FILE, save_layer_weights

MODEL_INFO_FILE = "segpipe_model.json"


def export_model(model: keras.Model, export_dir: str, info: DatasetInfo) -> None:
    """Write a SavedModel with `serving_default` (encoded image bytes) and `segment` (uint8 batch).

    Both resize to the model's input size and return the class map at the caller's size.
    `segment` takes pixels as the shards hold them: for a grayscale data set, grey in all
    three channels; `serving_default` makes colour images grey itself. The layer weights go
    alongside, for warm starts of later models.
    """
    height, width = model.input_shape[1:3]

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")])
    def segment(images):
        size = tf.shape(images)[1:3]
        # the training resize: any other would show the model inputs it never learned from
        resized = resize_image(tf.cast(images, tf.float32), (height, width))
        logits = tf.image.resize(model(resized, training=False), size, method="bilinear")
        return {"class_ids": tf.cast(tf.argmax(logits, axis=-1), tf.uint8)}

    @tf.function(input_signature=[tf.TensorSpec([], tf.string, name="image_bytes")])
    def serve_bytes(image_bytes):
        image = tf.io.decode_image(image_bytes, channels=3, expand_animations=False)
        if info.grayscale:  # as the shards: one grey channel, read back as three
            grey = tf.image.rgb_to_grayscale(image)
            image = tf.image.grayscale_to_rgb(grey)
        return {"class_ids": segment(image[tf.newaxis])["class_ids"][0]}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serving_default", serve_bytes)
    archive.add_endpoint("segment", segment)
    archive.write_out(export_dir, verbose=False)
    save_layer_weights(model, os.path.join(export_dir, LAYER_WEIGHTS_FILE))
    with open(os.path.join(export_dir, MODEL_INFO_FILE), "w") as handle:
        json.dump(
            {
                "num_classes": info.num_classes,
                "class_names": list(info.class_names),
                "image_height": height,
                "image_width": width,
                "grayscale": info.grayscale,
            },
            handle,
            indent=2,
        )


def load_segmenter(export_dir: str):
    """The `segment` function of an exported model: uint8 [N,H,W,3] -> {'class_ids': [N,H,W]}."""
    return tf.saved_model.load(export_dir).signatures["segment"]
