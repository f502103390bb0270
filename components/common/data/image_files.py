"""Read image files as every step does: known formats, a pixel limit before decoding, 8-bit."""

from __future__ import annotations

import io
import os
import pathlib
import posixpath
import re
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# File name extensions read as images, and the decoders PIL may use for them: naming the
# formats keeps PIL from trying others (EPS, for one, would run Ghostscript).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif", ".webp")
PIL_FORMATS = ("PNG", "JPEG", "BMP", "TIFF", "GIF", "WEBP")
_HIGH_BIT_MODES = ("I", "I;16", "I;16B", "I;16L", "F")
_GLOB_MAGIC = re.compile(r"[*?\[]")


class UnreadableImage(Exception):
    """A file that is not an image segpipe can decode; the message says why."""


class ImageTooLarge(Exception):
    """An image with more pixels than allowed, found from its header before decoding."""


def has_image_extension(path: str) -> bool:
    """Whether `path`'s name ends in one of IMAGE_EXTENSIONS (any case)."""
    return path.lower().endswith(IMAGE_EXTENSIONS)


def printable(text: str) -> str:
    """`text` with undecodable file-name bytes (surrogate escapes) written as `\\xNN`."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def is_utf8(text: str) -> bool:
    """False for file names whose bytes were not valid UTF-8 (Python keeps them as surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def extension(path: str) -> str:
    """The file name's extension, lower case, or `(none)`."""
    return posixpath.splitext(path)[1].lower() or "(none)"


def not_a_file(path: str) -> str | None:
    """Why a local `path` that exists as a name is not a readable file; None when it is one."""
    if "://" in path or os.path.isfile(path):
        return None
    if os.path.isdir(path):
        return "a folder, not a file"
    if os.path.islink(path):
        return "a symbolic link to nothing (broken, or a loop)"
    return "not a regular file" if os.path.lexists(path) else None


def split_glob(pattern: str) -> tuple[str, str]:
    """(folder before the first wildcard, the rest) of a local glob: `a/*.jpg` -> a, *.jpg."""
    parts = pattern.split("/")
    fixed = 0
    while fixed < len(parts) - 1 and not _GLOB_MAGIC.search(parts[fixed]):
        fixed += 1
    base = "/".join(parts[:fixed]) or ("/" if pattern.startswith("/") else ".")
    return base, "/".join(parts[fixed:])


def local_glob(pattern: str) -> list[str]:
    """Every name matching a local glob, sorted: folders and dangling links included.

    pathlib's `**` does not follow links to folders (Python's glob does), so a link loop
    is never walked.
    """
    base, rest = split_glob(pattern)
    if not _GLOB_MAGIC.search(rest):
        return [pattern] if os.path.lexists(pattern) else []
    return sorted(str(path) for path in pathlib.Path(base).glob(rest))


def open_image(data: bytes, max_pixels: int) -> Image.Image:
    """The image in `data`, opened but not decoded: its size is read from the header.

    An image over `max_pixels` is refused here, before a pixel is decoded. Raises
    ImageTooLarge or UnreadableImage; `decode_image` does the rest.
    """
    if not data:
        raise UnreadableImage("empty file (0 bytes)")
    # PIL's own process-wide bomb check must not refuse what max_pixels allows; ours is
    # stricter by default, and it too runs before decoding.
    if Image.MAX_IMAGE_PIXELS is not None and max_pixels > Image.MAX_IMAGE_PIXELS:
        Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=PIL_FORMATS)
    except UnidentifiedImageError as error:
        raise UnreadableImage(
            f"not a {', '.join(PIL_FORMATS)} image ({len(data):,} bytes)"
        ) from error
    except Image.DecompressionBombError as error:  # over twice PIL's limit, so over ours
        raise ImageTooLarge(f"{error} (refused before decoding)") from error
    # PIL raises SyntaxError for some malformed PNG chunks
    except (OSError, ValueError, SyntaxError) as error:
        raise UnreadableImage(str(error) or type(error).__name__) from error
    if image.width * image.height > max_pixels:
        raise ImageTooLarge(
            f"{image.width}x{image.height} = {image.width * image.height:,} pixels is more "
            f"than max_pixels {max_pixels:,} (refused before decoding)"
        )
    return image


def decode_image(image: Image.Image) -> Image.Image:
    """`image` (from `open_image`) fully decoded and upright (EXIF orientation applied)."""
    try:
        image.load()  # a full decode: truncated files fail here, not later
        ImageOps.exif_transpose(image, in_place=True)  # in place: no second full-size copy
        return image
    except (OSError, ValueError, SyntaxError) as error:
        raise UnreadableImage(str(error) or type(error).__name__) from error


def read_image(data: bytes, max_pixels: int) -> Image.Image:
    """`open_image` then `decode_image`."""
    return decode_image(open_image(data, max_pixels))


def to_display_image(image: Image.Image, grayscale: bool) -> Image.Image:
    """8-bit RGB (or L when `grayscale`) from any mode: 16-bit, RGBA, palette, 1-bit, CMYK."""
    if image.mode in _HIGH_BIT_MODES:
        array = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if image.mode.startswith("I;16") or array.max() > 255 else 255.0
        image = Image.fromarray(np.clip(array / peak * 255.0, 0, 255).astype(np.uint8), "L")
    elif image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA")  # drop alpha by compositing on black
        image = Image.alpha_composite(Image.new("RGBA", image.size, (0, 0, 0, 255)), image)
    target = "L" if grayscale else "RGB"
    return image if image.mode == target else image.convert(target)
