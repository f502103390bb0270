"""tf.data input pipeline over the TFRecord shards."""

from __future__ import annotations

import tensorflow as tf

from components.common.schema import decode_example

AUTOTUNE = tf.data.AUTOTUNE


def _to_pair(serialized: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    example = decode_example(serialized)
    return tf.cast(example["image"], tf.float32), tf.cast(example["mask"], tf.int32)


def _flip(image: tf.Tensor, mask: tf.Tensor, seed: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Flip image and mask together, left-right, with probability 1/2."""
    flip = tf.random.stateless_uniform([], seed=seed) < 0.5
    return (
        tf.cond(flip, lambda: tf.image.flip_left_right(image), lambda: image),
        tf.cond(flip, lambda: tf.image.flip_left_right(mask), lambda: mask),
    )


def make_dataset(
    file_pattern: str, batch_size: int, training: bool, seed: int = 0
) -> tf.data.Dataset:
    """Batches of (float32 image 0..255 HxWx3, int32 mask HxWx1); shuffled, flipped if training."""
    files = tf.io.gfile.glob(file_pattern)
    if not files:
        raise FileNotFoundError(f"no TFRecord shards match {file_pattern}")
    dataset = tf.data.Dataset.from_tensor_slices(sorted(files))
    if training:
        dataset = dataset.shuffle(len(files), seed=seed)
    dataset = dataset.interleave(
        tf.data.TFRecordDataset,
        cycle_length=min(len(files), 8),
        num_parallel_calls=AUTOTUNE,
        deterministic=not training,
    )
    dataset = dataset.map(_to_pair, num_parallel_calls=AUTOTUNE, deterministic=not training)
    if training:
        dataset = dataset.cache().shuffle(1024, seed=seed)
        seeds = tf.data.Dataset.random(seed=seed).batch(2)
        dataset = tf.data.Dataset.zip((dataset, seeds)).map(
            lambda pair, s: _flip(pair[0], pair[1], s), num_parallel_calls=AUTOTUNE
        )
    return dataset.batch(batch_size).prefetch(AUTOTUNE)
