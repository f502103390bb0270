"""Turn one source pair into a serialized tf.train.Example or a reject with a reason."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image

from components.common.data.image_files import (
    ImageTooLarge,
    UnreadableImage,
    decode_image,
    open_image,
    printable,
    to_display_image,
)
from components.common.data.schema import encode_example
from components.common.data.sources import SourcePair
from components.common.settings.config import IGNORE_LABEL, PreprocessConfig

# Masks are arrays of class ids; these modes hold one channel, so they can be read as such.
_ONE_CHANNEL_MODES = ("L", "P", "1", "I", "I;16", "I;16B", "I;16L")
_COUNT_CHUNK = 1 << 22  # pixels per bincount call: its int64 copy stays at 32 MB
_BINARY_HINT = (
    "0/255 binary masks need mask_encoding=binary (if 255 does mark unlabelled pixels, "
    "say so with ignore_values=255)"
)


class RejectedInput(Exception):
    """An input that cannot be used; `reason` is a stable machine-readable code.

    `mask_values` (pixels per raw mask value) when the mask was read before the reject.
    """

    def __init__(self, reason: str, detail: str, mask_values: dict[int, int] | None = None):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.mask_values = mask_values


@dataclass(frozen=True)
class ExampleSummary:
    """What statistics need to know about one written example."""

    class_pixels: np.ndarray  # pixel count per class index, ignore label excluded
    original_size: str  # "WIDTHxHEIGHT" of the source image


@dataclass(frozen=True)
class EncodedExample:
    """A serialized example, its summary and its mask's raw values (index and binary)."""

    source_id: str
    serialized: bytes
    summary: ExampleSummary
    mask_values: dict[int, int] | None = None


@dataclass(frozen=True)
class Labels:
    """A mask as stored (uint8 class ids, IGNORE_LABEL for ignored) and its raw values."""

    ids: np.ndarray
    raw_values: dict[int, int] | None  # pixels per one-channel mask value; None for palette


def _read(path: str) -> bytes:
    from apache_beam.io.filesystems import FileSystems

    with FileSystems.open(path) as handle:
        return handle.read()


def _open(path: str, what: str, max_pixels: int) -> Image.Image:
    """The image at `path`, its header read but nothing decoded."""
    try:
        return open_image(_read(path), max_pixels)
    except ImageTooLarge as error:
        raise RejectedInput("too_large", f"{what} {printable(path)}: {error}") from error
    except UnreadableImage as error:
        raise RejectedInput(f"unreadable_{what}", f"{printable(path)}: {error}") from error
    except OSError as error:  # the file itself: permissions, a folder, a link loop
        raise RejectedInput(f"unreadable_{what}", f"{printable(path)}: {error}") from error


def _decode(image: Image.Image, path: str, what: str) -> Image.Image:
    try:
        return decode_image(image)
    except UnreadableImage as error:
        raise RejectedInput(f"unreadable_{what}", f"{printable(path)}: {error}") from error


def _size_mismatch(pair: SourcePair, image_size, mask_size) -> RejectedInput:
    (width, height), (mask_width, mask_height) = image_size, mask_size
    return RejectedInput(
        "size_mismatch",
        f"image {printable(pair.image_path)} is {width}x{height}, "
        f"mask {printable(pair.mask_path)} is {mask_width}x{mask_height}",
    )


def value_counts(raw: np.ndarray) -> dict[int, int]:
    """Pixels per value of an integer mask, without an int64 copy of the whole mask."""
    if raw.dtype.kind == "u" and raw.dtype.itemsize <= 2:
        flat = raw.reshape(-1)
        counts = np.zeros(256**raw.dtype.itemsize, np.int64)
        for start in range(0, flat.size, _COUNT_CHUNK):
            counts += np.bincount(flat[start : start + _COUNT_CHUNK], minlength=counts.size)
        present = np.flatnonzero(counts)
        return dict(zip(present.tolist(), counts[present].tolist(), strict=True))
    values, counts = np.unique(raw, return_counts=True)
    return dict(zip(values.tolist(), counts.tolist(), strict=True))


def _stored_value(value: int, config: PreprocessConfig, ignored: set[int], threshold: int):
    """What raw mask `value` is stored as: a class id, IGNORE_LABEL, or None (out of range)."""
    if value in ignored or (config.mask_encoding == "index" and value == IGNORE_LABEL):
        return IGNORE_LABEL
    if config.mask_encoding == "binary":
        return int(value >= threshold)
    return value if 0 <= value < config.num_classes else None


def _palette_ids(mask: Image.Image, path: str, config: PreprocessConfig) -> np.ndarray:
    """uint8 class ids from an RGB mask and the configured colour table."""
    rgb = np.asarray(mask.convert("RGB"))
    packed = rgb[..., 0].astype(np.uint32) << 16
    packed |= rgb[..., 1].astype(np.uint32) << 8
    packed |= rgb[..., 2]
    del rgb
    ids = np.zeros(packed.shape, np.uint8)
    known = np.zeros(packed.shape, bool)
    for (r, g, b), index in config.palette_table().items():
        hit = packed == (r << 16) | (g << 8) | b
        ids[hit] = index
        known |= hit
    if not known.all():
        unknown = np.unique(packed[~known])[:5]
        colours = [((v >> 16) & 255, (v >> 8) & 255, v & 255) for v in unknown.tolist()]
        raise RejectedInput(
            "unknown_mask_colour", f"{printable(path)}: colours {colours} not in palette"
        )
    return ids


def _one_channel(mask: Image.Image, path: str) -> np.ndarray:
    """The mask's values as an integer array, in the dtype it was decoded to."""
    if mask.mode not in _ONE_CHANNEL_MODES:
        channels = np.asarray(mask.convert("RGB"))
        if not (
            np.array_equal(channels[..., 0], channels[..., 1])
            and np.array_equal(channels[..., 0], channels[..., 2])
        ):
            raise RejectedInput(
                "mask_not_class_index",
                f"{printable(path)}: {mask.mode} mask with differing channels; "
                "use --mask-encoding palette for colour masks",
            )
        mask = mask.convert("L")
    raw = np.asarray(mask)
    # mode "1" arrays are bool views of 0/255 bytes: a real 0/1 copy, not a view
    return raw.astype(np.uint8) if raw.dtype == bool else raw


def _looks_binary_255(values: dict[int, int], ignored: set[int]) -> bool:
    """Whether 255 outnumbers every other non-zero value together, as in 0/255 masks."""
    other = sum(n for v, n in values.items() if v not in (0, IGNORE_LABEL) and v not in ignored)
    return values.get(IGNORE_LABEL, 0) > other


def to_labels(mask: Image.Image, path: str, config: PreprocessConfig) -> Labels:
    """Class ids (uint8 HxW) from a mask in the configured encoding; ignored values -> 255.

    Rejects masks with values outside the classes, masks where every pixel is ignored, and
    (under `index`) masks whose only non-background value is 255: their foreground would
    all become the ignore label.
    """
    if config.mask_encoding == "palette":
        ids = _palette_ids(mask, path, config)
        for value in config.ignore_value_list():
            if value <= IGNORE_LABEL:
                ids[ids == value] = IGNORE_LABEL
        if (ids == IGNORE_LABEL).all():
            raise RejectedInput("empty_mask", f"{printable(path)}: every pixel is ignored")
        return Labels(ids, None)
    raw = _one_channel(mask, path)
    values = value_counts(raw)
    ignored = set(config.ignore_value_list())
    kept = [v for v in values if v not in ignored]
    threshold = config.binary_threshold if kept and max(kept) > 1 else 1  # 0/1 masks as is
    stored = {v: _stored_value(v, config, ignored, threshold) for v in values}
    bad = sorted(v for v, s in stored.items() if s is None)
    if bad:
        hint = f"; {_BINARY_HINT}" if _looks_binary_255(values, ignored) else ""
        raise RejectedInput(
            "label_out_of_range",
            f"{printable(path)}: values {bad[:10]} outside 0..{config.num_classes - 1}{hint}",
            values,
        )
    if all(s == IGNORE_LABEL for s in stored.values()):
        raise RejectedInput("empty_mask", f"{printable(path)}: every pixel is ignored", values)
    if (
        config.mask_encoding == "index"
        and IGNORE_LABEL in values
        and IGNORE_LABEL not in ignored
        and all(s in (0, IGNORE_LABEL) for s in stored.values())
    ):
        shown = sorted(values)[:10]
        raise RejectedInput(
            "foreground_ignored",
            f"{printable(path)}: values {shown}: no class but 0 is left once 255, the ignore "
            f"label, is ignored; {_BINARY_HINT}",
            values,
        )
    return Labels(_apply(raw, stored), values)


def _apply(raw: np.ndarray, stored: dict[int, int]) -> np.ndarray:
    """`raw` mapped value by value through `stored`, as uint8."""
    if raw.dtype.kind == "u" and raw.dtype.itemsize <= 2:
        table = np.full(256**raw.dtype.itemsize, IGNORE_LABEL, np.uint8)
        table[list(stored)] = list(stored.values())
        return table[raw]
    values, inverse = np.unique(raw, return_inverse=True)  # 32-bit masks: rare
    return np.array([stored[v] for v in values.tolist()], np.uint8)[inverse.reshape(raw.shape)]


def _fit(image: Image.Image, height: int, width: int, resample, fill, mode: str) -> Image.Image:
    """Resize to height x width: stretched, or scaled to fit and padded with `fill`."""
    if mode == "stretch":
        return image.resize((width, height), resample)
    if mode != "pad":
        raise ValueError(f"unknown resize mode {mode!r}; use 'stretch' or 'pad'")
    scale = min(width / image.width, height / image.height)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    canvas = Image.new(image.mode, (width, height), fill)
    canvas.paste(image.resize(size, resample), ((width - size[0]) // 2, (height - size[1]) // 2))
    return canvas


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def encode_pair(pair: SourcePair, config: PreprocessConfig) -> EncodedExample:
    """Decode, validate and resize one pair; raise `RejectedInput` when it cannot be used.

    Sizes are checked from the headers before anything is decoded (max_pixels, and width
    and height up to EXIF rotation); the mask is then decoded and resized before the image
    is, so one worker never holds both at full size.
    """
    if pair.problem:
        raise RejectedInput(*pair.problem)
    if pair.image_path is None:
        raise RejectedInput("missing_image", f"no image for mask {printable(pair.mask_path)}")
    if pair.mask_path is None:
        raise RejectedInput("missing_mask", f"no mask for image {printable(pair.image_path)}")
    image = _open(pair.image_path, "image", config.max_pixels)
    mask = _open(pair.mask_path, "mask", config.max_pixels)
    # EXIF orientation may swap width and height; it is only known for sure once decoded
    if sorted(image.size) != sorted(mask.size):
        raise _size_mismatch(pair, image.size, mask.size)
    mask = _decode(mask, pair.mask_path, "mask")
    mask_size = mask.size
    labels = to_labels(mask, pair.mask_path, config)
    del mask  # the full-size mask goes before the image is decoded
    out_height, out_width = config.image_height, config.image_width
    resized_mask = _fit(
        Image.fromarray(labels.ids, "L"),
        out_height,
        out_width,
        Image.Resampling.NEAREST,
        IGNORE_LABEL,
        config.resize_mode,
    )
    mask_values = labels.raw_values
    del labels
    try:
        image = _decode(image, pair.image_path, "image")
        if image.size != mask_size:
            raise _size_mismatch(pair, image.size, mask_size)
    except RejectedInput as rejected:
        rejected.mask_values = mask_values
        raise
    width, height = image.size
    display = to_display_image(image, config.grayscale)
    del image
    resized_image = _fit(
        display, out_height, out_width, Image.Resampling.BILINEAR, 0, config.resize_mode
    )
    del display
    resized_labels = np.asarray(resized_mask)
    counts = np.bincount(
        resized_labels[resized_labels != IGNORE_LABEL], minlength=config.num_classes
    )
    serialized = encode_example(
        pair.source_id, _png(resized_image), _png(resized_mask), out_height, out_width
    )
    summary = ExampleSummary(counts.astype(np.int64), f"{width}x{height}")
    return EncodedExample(pair.source_id, serialized, summary, mask_values)
