"""Model zoo: a U-Net whose width and depth are configurable."""

from __future__ import annotations

import keras
from keras import layers


def _conv_block(x, filters: int, name: str):
    for i in (1, 2):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv{i}")(x)
        # momentum 0.9: moving statistics settle within the few hundred steps small runs take
        x = layers.BatchNormalization(momentum=0.9, name=f"{name}_bn{i}")(x)
        x = layers.ReLU(name=f"{name}_relu{i}")(x)
    return x


def build_unet(num_classes: int, height: int, width: int, base_width: int = 16, depth: int = 3):
    """U-Net taking float images in 0..255 and returning per-pixel logits at input size."""
    if height % 2**depth or width % 2**depth:
        raise ValueError(f"input {height}x{width} must be divisible by 2**depth = {2**depth}")
    inputs = keras.Input((height, width, 3), name="image")
    x = layers.Rescaling(1.0 / 255, name="rescale")(inputs)
    skips = []
    for level in range(depth):
        x = _conv_block(x, base_width * 2**level, f"down{level}")
        skips.append(x)
        x = layers.MaxPooling2D(name=f"pool{level}")(x)
    x = _conv_block(x, base_width * 2**depth, "bottom")
    for level in reversed(range(depth)):
        filters = base_width * 2**level
        x = layers.Conv2DTranspose(filters, 2, strides=2, name=f"up{level}")(x)
        x = layers.Concatenate(name=f"skip{level}")([x, skips[level]])
        x = _conv_block(x, filters, f"dec{level}")
    logits = layers.Conv2D(num_classes, 1, dtype="float32", name="logits")(x)
    return keras.Model(inputs, logits, name=f"unet_w{base_width}_d{depth}")
