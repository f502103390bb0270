"""Turn one source pair into a serialized tf.train.Example or a reject with a reason."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

from components.common.config import IGNORE_LABEL, PreprocessConfig
from components.common.schema import encode_example
from components.preprocess.sources import SourcePair

# Masks are arrays of class ids; these modes hold one channel, so they can be read as such.
_ONE_CHANNEL_MODES = ("L", "P", "1", "I", "I;16", "I;16B", "I;16L")


class RejectedInput(Exception):
    """An input that cannot be used; `reason` is a stable machine-readable code."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class ExampleSummary:
    """What statistics need to know about one written example."""

    class_pixels: np.ndarray  # pixel count per class index, ignore label excluded
    original_size: str  # "WIDTHxHEIGHT" of the source image


@dataclass(frozen=True)
class EncodedExample:
    """A serialized example and its summary."""

    source_id: str
    serialized: bytes
    summary: ExampleSummary


def parse_palette(spec: str) -> dict[tuple[int, int, int], int]:
    """`"0,0,0=0;128,0,0=1"` -> {(0, 0, 0): 0, (128, 0, 0): 1}."""
    table = {}
    for entry in filter(None, (item.strip() for item in spec.split(";"))):
        colour, sep, index = entry.partition("=")
        rgb = tuple(int(c) for c in colour.split(","))
        if not sep or len(rgb) != 3:
            raise ValueError(f"palette entry {entry!r} is not 'R,G,B=CLASS'")
        table[rgb] = int(index)
    if not table:
        raise ValueError("mask encoding 'palette' needs --palette 'R,G,B=CLASS;...'")
    return table


def _read(path: str) -> bytes:
    from apache_beam.io.filesystems import FileSystems

    with FileSystems.open(path) as handle:
        return handle.read()


def _decode(path: str, what: str) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(_read(path)))
        image.load()  # forces a full decode: truncated files fail here, not later
        return ImageOps.exif_transpose(image)
    # PIL raises SyntaxError for some malformed PNG chunks
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise RejectedInput(f"unreadable_{what}", f"{path}: {error}") from error


def to_display_image(image: Image.Image, grayscale: bool) -> Image.Image:
    """8-bit RGB (or L when `grayscale`) from any mode: 16-bit, RGBA, palette, 1-bit, CMYK."""
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        array = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if image.mode.startswith("I;16") or array.max() > 255 else 255.0
        image = Image.fromarray(np.clip(array / peak * 255.0, 0, 255).astype(np.uint8), "L")
    elif image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA")  # drop alpha by compositing on black
        image = Image.alpha_composite(Image.new("RGBA", image.size, (0, 0, 0, 255)), image)
    return image.convert("L" if grayscale else "RGB")


def to_labels(mask: Image.Image, path: str, config: PreprocessConfig) -> np.ndarray:
    """Class ids (int64 HxW) from a mask in the configured encoding; ignore values -> 255."""
    if config.mask_encoding == "palette":
        rgb = np.asarray(mask.convert("RGB"), dtype=np.int64)
        packed = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
        table = parse_palette(config.palette)
        labels = np.full(packed.shape, -1, dtype=np.int64)
        for (r, g, b), index in table.items():
            labels[packed == (r << 16) | (g << 8) | b] = index
        if (labels < 0).any():
            unknown = np.unique(packed[labels < 0])[:5]
            colours = [((v >> 16) & 255, (v >> 8) & 255, v & 255) for v in unknown.tolist()]
            raise RejectedInput("unknown_mask_colour", f"{path}: colours {colours} not in palette")
    else:
        if mask.mode not in _ONE_CHANNEL_MODES:
            channels = np.asarray(mask.convert("RGB"))
            if not (
                np.array_equal(channels[..., 0], channels[..., 1])
                and np.array_equal(channels[..., 0], channels[..., 2])
            ):
                raise RejectedInput(
                    "mask_not_class_index",
                    f"{path}: {mask.mode} mask with differing channels; "
                    "use --mask-encoding palette for colour masks",
                )
            mask = mask.convert("L")
        labels = np.asarray(mask, dtype=np.int64)
        if config.mask_encoding == "binary":
            labels = (
                (labels >= config.binary_threshold).astype(np.int64) if labels.max() > 1 else labels
            )
        elif config.mask_encoding != "index":
            raise ValueError(f"unknown mask encoding {config.mask_encoding!r}")
    for value in config.ignore_value_list():
        labels[labels == value] = IGNORE_LABEL
    return labels


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
    """Decode, validate and resize one pair; raise `RejectedInput` when it cannot be used."""
    if pair.image_path is None:
        raise RejectedInput("missing_image", f"no image for mask {pair.mask_path}")
    if pair.mask_path is None:
        raise RejectedInput("missing_mask", f"no mask for image {pair.image_path}")
    image = _decode(pair.image_path, "image")
    mask = _decode(pair.mask_path, "mask")
    if image.size != mask.size:
        raise RejectedInput(
            "size_mismatch",
            f"image {pair.image_path} is {image.width}x{image.height}, "
            f"mask {pair.mask_path} is {mask.width}x{mask.height}",
        )
    labels = to_labels(mask, pair.mask_path, config)
    bad = np.unique(labels[(labels >= config.num_classes) & (labels != IGNORE_LABEL)])
    if bad.size:
        raise RejectedInput(
            "label_out_of_range",
            f"{pair.mask_path}: values {bad[:10].tolist()} outside 0..{config.num_classes - 1}",
        )
    if (labels == IGNORE_LABEL).all():
        raise RejectedInput("empty_mask", f"{pair.mask_path}: every pixel is ignored")
    height, width = config.image_height, config.image_width
    resized_image = _fit(
        to_display_image(image, config.grayscale),
        height,
        width,
        Image.Resampling.BILINEAR,
        0,
        config.resize_mode,
    )
    resized_mask = _fit(
        Image.fromarray(labels.astype(np.uint8), "L"),
        height,
        width,
        Image.Resampling.NEAREST,
        IGNORE_LABEL,
        config.resize_mode,
    )
    resized_labels = np.asarray(resized_mask)
    counts = np.bincount(
        resized_labels[resized_labels != IGNORE_LABEL], minlength=config.num_classes
    )
    serialized = encode_example(
        pair.source_id, _png(resized_image), _png(resized_mask), height, width
    )
    summary = ExampleSummary(counts.astype(np.int64), f"{image.width}x{image.height}")
    return EncodedExample(pair.source_id, serialized, summary)
