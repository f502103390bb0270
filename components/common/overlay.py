"""Colour class masks and blend them over images (numpy + Pillow), for reports and predict."""

from __future__ import annotations

import io

import numpy as np

IGNORE_COLOUR = (0, 0, 0)
_BAND_ROWS = 256
# Distinct, colour-blind friendly first colours (Okabe-Ito), then a deterministic spread.
_BASE = [
    (0, 0, 0),
    (230, 159, 0),
    (86, 180, 233),
    (0, 158, 115),
    (240, 228, 66),
    (0, 114, 178),
    (213, 94, 0),
    (204, 121, 167),
]


def palette(num_classes: int) -> np.ndarray:
    """uint8 [256, 3]: a colour per class value; values past `num_classes` (ignore) are black."""
    colours = np.zeros((256, 3), dtype=np.uint8)
    for index in range(min(num_classes, 256)):
        if index < len(_BASE):
            colours[index] = _BASE[index]
        else:  # golden-ratio hue steps stay distinct for many classes
            hue = (index * 0.618034) % 1.0
            colours[index] = [int(255 * abs(np.sin(np.pi * (hue + k / 3)))) for k in range(3)]
    return colours


def colorize(class_ids: np.ndarray, num_classes: int) -> np.ndarray:
    """uint8 [H, W, 3] colour image of an integer class map."""
    return palette(num_classes)[np.clip(class_ids, 0, 255).astype(np.uint8)]


def blend(image: np.ndarray, class_ids: np.ndarray, num_classes: int, alpha: float = 0.5):
    """The image with the coloured class map laid over it; class 0 (background) left clear.

    Blended in bands of rows, so the float temporaries stay small for large images.
    """
    out = np.empty((*class_ids.shape, 3), np.uint8)
    for top in range(0, class_ids.shape[0], _BAND_ROWS):
        rows = slice(top, top + _BAND_ROWS)
        colours = colorize(class_ids[rows], num_classes).astype(np.float32)
        base = image[rows].astype(np.float32)
        if base.ndim == 2:
            base = np.repeat(base[..., None], 3, axis=-1)
        weight = np.where((class_ids[rows] > 0)[..., None], alpha, 0.0)
        out[rows] = (base * (1 - weight) + colours * weight).round().astype(np.uint8)
    return out


def png_bytes(array: np.ndarray) -> bytes:
    """PNG encoding of a uint8 [H, W] or [H, W, 3] array."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buffer, format="PNG")
    return buffer.getvalue()
