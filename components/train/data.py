"""tf.data input pipeline over the TFRecord shards: parallel reads, joint augmentation."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import tensorflow as tf

from components.common.data.schema import decode_example
from components.common.settings.config import IGNORE_LABEL

AUTOTUNE = tf.data.AUTOTUNE


@dataclass(frozen=True)
class Augmentation:
    """Random changes applied to image and mask together (the mask only geometrically)."""

    flip: bool = True
    scale_min: float = 1.0
    scale_max: float = 1.0
    color_jitter: float = 0.0
    ignore_label: int = IGNORE_LABEL  # fills mask pixels that scaling leaves uncovered
    crop: tuple[int, int] | None = None  # (height, width) of random crops; None: whole images

    def __post_init__(self) -> None:
        if not 0 < self.scale_min <= self.scale_max:
            raise ValueError(
                f"need 0 < scale_min <= scale_max, got {self.scale_min}, {self.scale_max}"
            )
        if not 0 <= self.color_jitter < 1:
            raise ValueError(f"color_jitter must be in [0, 1), got {self.color_jitter}")


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


def _scale_crop(image, mask, seed, options: Augmentation):
    """A random window of the image scaled by a random factor, at the output size.

    The output is `options.crop` (or the image's own size): a window of output/scale source
    pixels at a random place, resized to the output. A window larger than the image hangs
    over its edges, and what it covers beyond them is black in the image and the ignore
    label in the mask. One crop_and_resize per tensor, whatever the scale.
    """
    height, width = tf.shape(image)[0], tf.shape(image)[1]  # decoded PNGs: no static shape
    source = tf.cast(tf.stack([height, width]), tf.float32)
    output = tf.stack([height, width]) if options.crop is None else tf.constant(options.crop)
    scale_seed, place_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    scale = tf.random.stateless_uniform([], scale_seed, options.scale_min, options.scale_max)
    window = tf.cast(output, tf.float32) / scale
    # anywhere inside the image, or (a window larger than it) anywhere that covers it
    start = tf.random.stateless_uniform([2], place_seed) * (source - window)
    # crop_and_resize samples from corner to corner: put the first and last samples at the
    # centres of the output's pixels, as tf.image.resize does
    step = window / tf.cast(output, tf.float32)
    first = start + step / 2 - 0.5
    last = start + window - step / 2 - 0.5
    box = tf.stack([first[0], first[1], last[0], last[1]]) / tf.tile(tf.maximum(source - 1, 1), [2])
    boxes, index = box[tf.newaxis], tf.zeros([1], tf.int32)
    image = tf.image.crop_and_resize(image[tf.newaxis], boxes, index, output)[0]
    mask = tf.image.crop_and_resize(
        tf.cast(mask[tf.newaxis], tf.float32),
        boxes,
        index,
        output,
        method="nearest",
        extrapolation_value=float(options.ignore_label),
    )[0]
    return image, tf.cast(mask, tf.int32)


def _jitter(image, seed, amount: float):
    """Random brightness, contrast and saturation, each within +-amount, on 0..255 pixels."""
    seeds = tf.unstack(tf.random.experimental.stateless_split(seed, 3))
    image = tf.image.stateless_random_brightness(image, 255.0 * amount, seeds[0])
    image = tf.image.stateless_random_contrast(image, 1 - amount, 1 + amount, seeds[1])
    image = tf.image.stateless_random_saturation(image, 1 - amount, 1 + amount, seeds[2])
    return tf.clip_by_value(image, 0.0, 255.0)


def augment(image, mask, seed, options: Augmentation):
    """One example's augmentation, a pure function of `seed` (a shape [2] int tensor)."""
    scale_seed, flip_seed, jitter_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 3))
    if options.scale_min != 1.0 or options.scale_max != 1.0 or options.crop is not None:
        image, mask = _scale_crop(image, mask, scale_seed, options)
    if options.flip:
        image, mask = _flip(image, mask, flip_seed)
    if options.color_jitter > 0:
        image = _jitter(image, jitter_seed, options.color_jitter)
    return image, mask


def pixel_weights(mask, class_weights: Sequence[float], ignore_label: int):
    """Per-pixel loss weights (H x W) from per-class weights; ignored pixels weigh 0."""
    table = tf.constant(list(class_weights), tf.float32)
    labels = mask[..., 0]
    valid = tf.logical_and(labels >= 0, labels < len(class_weights))
    weights = tf.gather(table, tf.where(valid, labels, 0))
    return tf.where(tf.logical_and(valid, labels != ignore_label), weights, 0.0)


def make_dataset(
    file_pattern: str | Sequence[str],
    batch_size: int,
    training: bool,
    seed: int = 0,
    augmentation: Augmentation | None = Augmentation(),
    class_weights: Sequence[float] | None = None,
    deterministic: bool = False,
    image_size: tuple[int, int] | None = None,
    drop_remainder: bool = False,
    cache: str = "memory",
    shard: tuple[int, int] = (0, 1),
) -> tf.data.Dataset:
    """Batches of (float32 image 0..255 HxWx3, int32 mask HxWx1[, float32 weights HxW]) from
    the shards `file_pattern` (or each of several patterns) matches.

    Training data is shuffled and augmented with per-example seeds drawn from `seed`, so
    `deterministic=True` (ordered reads) gives the same batches every time. `image_size`
    resizes to the model's input where the shards differ and makes the shapes static (training
    batches with `augmentation.crop` have the crop's), and `drop_remainder` the batch size
    (TPUs and XLA want both). Decoded training examples are
    kept after the first epoch per `cache`: "memory", "none" (decode every epoch: data sets
    larger than memory), or a local file prefix (tf.data's file cache). `shard` = (index,
    count) reads only every count-th file from the index-th: one worker's share.
    """
    patterns = [file_pattern] if isinstance(file_pattern, str) else list(file_pattern)
    files = [name for pattern in patterns for name in tf.io.gfile.glob(pattern)]
    if not files:
        raise FileNotFoundError(f"no TFRecord shards match {', '.join(patterns)}")
    index, count = shard
    if len(files) < count:
        raise ValueError(
            f"{file_pattern}: {len(files)} shard(s) for {count} workers; each worker reads its "
            "own shards, so write at least as many (preprocess num_shards) as there are workers"
        )
    files = sorted(files)[index::count]
    ordered = deterministic or not training
    dataset = tf.data.Dataset.from_tensor_slices(sorted(files))
    if training:
        dataset = dataset.shuffle(len(files), seed=seed)
    dataset = dataset.interleave(
        tf.data.TFRecordDataset,
        cycle_length=min(len(files), 8),
        num_parallel_calls=AUTOTUNE,
        deterministic=ordered,
    )
    dataset = dataset.map(_to_pair, num_parallel_calls=AUTOTUNE, deterministic=ordered)
    if image_size is not None:  # to the model's input size, when the shards differ from it
        dataset = dataset.map(
            lambda image, mask: _resize(image, mask, image_size),
            num_parallel_calls=AUTOTUNE,
            deterministic=ordered,
        )
    if training:
        dataset = _cached(dataset, cache).shuffle(1024, seed=seed)
        if augmentation is not None:
            seeds = tf.data.Dataset.random(seed=seed).batch(2)
            dataset = tf.data.Dataset.zip((dataset, seeds)).map(
                lambda pair, s: augment(pair[0], pair[1], s, augmentation),
                num_parallel_calls=AUTOTUNE,
                deterministic=ordered,
            )
        if class_weights is not None:
            ignore = augmentation.ignore_label if augmentation else IGNORE_LABEL
            dataset = dataset.map(
                lambda image, mask: (image, mask, pixel_weights(mask, class_weights, ignore)),
                num_parallel_calls=AUTOTUNE,
                deterministic=ordered,
            )
    cropped = training and augmentation is not None and augmentation.crop is not None
    shape = augmentation.crop if cropped else image_size
    if shape is not None:
        dataset = dataset.map(lambda *pair: _with_shape(shape, *pair))
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder).prefetch(AUTOTUNE)
    if not training:
        # Keras makes a new validation iterator every epoch; tearing one down waits for
        # tf.data's autotune thread, which stalled long runs for seconds per epoch
        options = tf.data.Options()
        options.autotune.enabled = False
        dataset = dataset.with_options(options)
    return dataset


def _cached(dataset: tf.data.Dataset, cache: str) -> tf.data.Dataset:
    if cache == "none":
        return dataset
    if not cache:
        raise ValueError('cache must be "memory", "none" or a file prefix, got ""')
    return dataset.cache("" if cache == "memory" else cache)


def resize_image(image, size: tuple[int, int]):
    """Float image(s) to the model's input `size`: the one resize of training and serving."""
    # antialias: shrinking full-resolution images without it aliases thin structures
    return tf.image.resize(image, size, method="bilinear", antialias=True)


def _resize(image, mask, size: tuple[int, int]):
    """Image (bilinear) and mask (nearest) at `size`; both are identities at their own size."""
    return resize_image(image, size), tf.image.resize(mask, size, method="nearest")


def _with_shape(size: tuple[int, int], image, mask, *weights):
    """Decoded PNGs have unknown sizes: state the known one (fails loudly on a mismatch)."""
    image = tf.ensure_shape(image, [*size, 3])
    mask = tf.ensure_shape(mask, [*size, 1])
    return (image, mask, *(tf.ensure_shape(w, list(size)) for w in weights))
