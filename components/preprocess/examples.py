"""Turn one source pair into a serialized tf.train.Example or a reject with a reason."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image

from components.common.config import IGNORE_LABEL
from components.common.schema import encode_example
from components.preprocess.sources import SourcePair


class RejectedInput(Exception):
    """An input that cannot be used; `reason` is a stable machine-readable code."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class EncodedExample:
    """A written example and what statistics need to know about it."""

    source_id: str
    serialized: bytes
    class_pixels: np.ndarray  # pixel count per class index, ignore label excluded


def _read(path: str) -> bytes:
    from apache_beam.io.filesystems import FileSystems

    with FileSystems.open(path) as handle:
        return handle.read()


def _decode(path: str, what: str) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(_read(path)))
        image.load()  # forces a full decode: truncated files fail here, not later
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise RejectedInput(f"unreadable_{what}", f"{path}: {error}") from error
    return image


def _mask_array(mask: Image.Image, path: str) -> np.ndarray:
    if mask.mode not in ("L", "P", "1", "I", "I;16"):
        raise RejectedInput(
            "mask_not_class_index", f"{path}: mode {mask.mode}, expected one channel of class ids"
        )
    return np.asarray(mask, dtype=np.int64)


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def encode_pair(pair: SourcePair, height: int, width: int, num_classes: int) -> EncodedExample:
    """Decode, validate and resize one pair; raise `RejectedInput` when it cannot be used."""
    if pair.image_path is None:
        raise RejectedInput("missing_image", f"mask {pair.mask_path} has no image")
    if pair.mask_path is None:
        raise RejectedInput("missing_mask", f"image {pair.image_path} has no mask")
    image = _decode(pair.image_path, "image")
    mask = _decode(pair.mask_path, "mask")
    if image.size != mask.size:
        raise RejectedInput(
            "size_mismatch",
            f"image {pair.image_path} is {image.size[0]}x{image.size[1]}, "
            f"mask {pair.mask_path} is {mask.size[0]}x{mask.size[1]}",
        )
    labels = _mask_array(mask, pair.mask_path)
    bad = np.unique(labels[(labels >= num_classes) & (labels != IGNORE_LABEL)])
    if bad.size:
        raise RejectedInput(
            "label_out_of_range",
            f"{pair.mask_path}: values {bad[:10].tolist()} outside 0..{num_classes - 1}",
        )
    resized_image = image.convert("RGB").resize((width, height), Image.Resampling.BILINEAR)
    resized_mask = Image.fromarray(labels.astype(np.uint8), "L").resize(
        (width, height), Image.Resampling.NEAREST
    )
    resized_labels = np.asarray(resized_mask)
    counts = np.bincount(resized_labels[resized_labels != IGNORE_LABEL], minlength=num_classes)
    serialized = encode_example(
        pair.source_id, _png(resized_image), _png(resized_mask), height, width
    )
    return EncodedExample(pair.source_id, serialized, counts[:num_classes].astype(np.int64))
