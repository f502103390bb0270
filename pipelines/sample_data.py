"""A deterministic synthetic segmentation data set: coloured shapes on noisy textures."""

from __future__ import annotations

import fcntl
import glob
import hashlib
import json
import os
import shutil

import numpy as np
from PIL import Image, ImageDraw

from components.common.errors import StepFailed

CLASS_NAMES = ("background", "circle", "square", "triangle")
# Each shape class leans towards one colour, with enough spread that colour alone misleads.
_CLASS_TINT = {1: (200, 60, 60), 2: (60, 180, 70), 3: (70, 90, 210)}


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A smooth random gradient with blotchy texture and pixel noise."""
    base = rng.uniform(40, 200, size=3)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    slope = rng.uniform(-0.4, 0.4, size=(2, 3))
    texture = np.kron(
        rng.normal(0, 18, size=(height // 8 + 1, width // 8 + 1, 3)), np.ones((8, 8, 1))
    )
    image = base + yy[..., None] * slope[0] + xx[..., None] * slope[1] + texture[:height, :width]
    return image + rng.normal(0, 10, size=(height, width, 3))


def _draw_shape(
    draw: ImageDraw.ImageDraw, shape: int, box: tuple[int, int, int, int], fill
) -> None:
    x0, y0, x1, y1 = box
    if shape == 1:
        draw.ellipse(box, fill=fill)
    elif shape == 2:
        draw.rectangle(box, fill=fill)
    else:
        draw.polygon([((x0 + x1) // 2, y0), (x1, y1), (x0, y1)], fill=fill)


def make_pair(seed: int, height: int = 160, width: int = 160) -> tuple[Image.Image, Image.Image]:
    """One RGB image and its class-index mask, fully determined by `seed`."""
    rng = np.random.default_rng(seed)
    pixels = _background(rng, height, width)
    mask = Image.new("L", (width, height), 0)
    mask_draw = ImageDraw.Draw(mask)
    for _ in range(rng.integers(1, 4)):
        shape = int(rng.integers(1, len(CLASS_NAMES)))
        size = int(rng.integers(min(height, width) // 6, min(height, width) // 2.5))
        x0 = int(rng.integers(0, width - size))
        y0 = int(rng.integers(0, height - size))
        box = (x0, y0, x0 + size, y0 + size)
        layer = Image.new("L", (width, height), 0)
        _draw_shape(ImageDraw.Draw(layer), shape, box, 255)
        inside = np.asarray(layer) > 0
        colour = np.clip(np.array(_CLASS_TINT[shape]) + rng.normal(0, 35, size=3), 0, 255)
        pixels[inside] = colour + rng.normal(0, 12, size=(int(inside.sum()), 3))
        _draw_shape(mask_draw, shape, box, shape)
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
    return image, mask


def write_sample_data(directory: str, count: int = 240, seed: int = 0, size: int = 160) -> int:
    """Write `count` pairs as `images/NAME.png` + `masks/NAME.png`; returns the count written."""
    images_dir = os.path.join(directory, "images")
    masks_dir = os.path.join(directory, "masks")
    os.makedirs(images_dir, exist_ok=True)
    os.makedirs(masks_dir, exist_ok=True)
    for index in range(count):
        image, mask = make_pair(seed * 1_000_003 + index, size, size)
        name = f"sample_{index:05d}.png"
        image.save(os.path.join(images_dir, name))
        mask.save(os.path.join(masks_dir, name))
    return count


# beside the set (not in it: every file under a data root is an input, a reject or ignored):
# count, seed, size and digest of a complete set, written last
RECORD_SUFFIX = ".json"


def ensure_sample_data(directory: str, count: int = 240, seed: int = 0, size: int = 160) -> None:
    """Make `directory` hold the complete, verified sample set, written at most once.

    The set is written to a temporary folder and renamed into place under a lock, so a run
    killed while writing leaves no partial set, and two first runs at once write it once.
    A set that fails its check (count and digest) is replaced.
    """
    directory = os.path.abspath(directory)
    os.makedirs(os.path.dirname(directory), exist_ok=True)
    with open(f"{directory}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if sample_set_problem(directory, count, seed, size) is None:
            return
        for left in glob.glob(f"{glob.escape(directory)}.tmp-*"):  # by a killed writer
            if os.path.isdir(left):
                shutil.rmtree(left, ignore_errors=True)
            else:
                os.remove(left)
        staging = f"{directory}.tmp-{os.getpid()}"
        write_sample_data(staging, count, seed, size)
        record = {"count": count, "seed": seed, "size": size, "sha256": _digest(staging)}
        if os.path.lexists(f"{directory}{RECORD_SUFFIX}"):
            os.remove(f"{directory}{RECORD_SUFFIX}")
        if os.path.lexists(directory):  # partial or altered: never used
            stale = f"{directory}.stale-{os.getpid()}"
            os.replace(directory, stale)
            shutil.rmtree(stale, ignore_errors=True)
        os.replace(staging, directory)
        with open(f"{staging}{RECORD_SUFFIX}", "w", encoding="utf-8") as handle:
            json.dump(record, handle, indent=2)
        os.replace(f"{staging}{RECORD_SUFFIX}", f"{directory}{RECORD_SUFFIX}")
        problem = sample_set_problem(directory, count, seed, size)
        if problem is not None:
            raise StepFailed(
                f"the sample data just written to {directory} fails its check: {problem}"
            )


def sample_set_problem(directory: str, count: int, seed: int, size: int) -> str | None:
    """Why `directory` is not the complete sample set asked for, or None when it is."""
    try:
        with open(f"{directory}{RECORD_SUFFIX}", encoding="utf-8") as handle:
            record = json.load(handle)
    except (OSError, ValueError):
        return f"no readable {os.path.basename(directory)}{RECORD_SUFFIX} (never finished)"
    wanted = {"count": count, "seed": seed, "size": size}
    if any(record.get(key) != value for key, value in wanted.items()):
        return f"it was written with {record}, not {wanted}"
    names = sorted(_files(directory))
    if len(names) != 2 * count:
        return f"{len(names)} files, expected {2 * count}"
    if _digest(directory) != record.get("sha256"):
        return "its files differ from those written (digest mismatch)"
    return None


def _files(directory: str) -> list[str]:
    return [
        os.path.join(sub, name)
        for sub in ("images", "masks")
        if os.path.isdir(os.path.join(directory, sub))
        for name in os.listdir(os.path.join(directory, sub))
    ]


def _digest(directory: str) -> str:
    """sha256 over every image and mask file's name and bytes, in name order."""
    digest = hashlib.sha256()
    for relative in sorted(_files(directory)):
        digest.update(relative.encode("utf-8") + b"\0")
        with open(os.path.join(directory, relative), "rb") as handle:
            digest.update(hashlib.sha256(handle.read()).digest())
    return digest.hexdigest()
