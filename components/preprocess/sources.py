"""Find image + mask pairs in the paired-folders layout (`images/NAME.*`, `masks/NAME.*`)."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from components.common import storage

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif")


@dataclass(frozen=True)
class SourcePair:
    """One input: an image and the mask that labels it (None when the mask is missing)."""

    source_id: str
    image_path: str | None
    mask_path: str | None


def _stem(path: str) -> str:
    return posixpath.splitext(posixpath.basename(path))[0]


def _by_stem(paths: list[str], folder: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for path in paths:
        if not path.lower().endswith(IMAGE_EXTENSIONS):
            continue
        stem = _stem(path)
        if stem in found:
            raise ValueError(
                f"two files in {folder} resolve to the same source id {stem!r}: "
                f"{found[stem]} and {path}"
            )
        found[stem] = path
    return found


def list_paired_folders(data_dir: str) -> list[SourcePair]:
    """All pairs under `data_dir`, including half pairs (image or mask missing), sorted by id."""
    images_dir = storage.join(data_dir, "images")
    masks_dir = storage.join(data_dir, "masks")
    images = _by_stem(storage.glob(storage.join(images_dir, "*")), images_dir)
    masks = _by_stem(storage.glob(storage.join(masks_dir, "*")), masks_dir)
    if not images and not masks:
        raise FileNotFoundError(
            f"no images found under {images_dir} (expected images/NAME.png + masks/NAME.png)"
        )
    return [
        SourcePair(stem, images.get(stem), masks.get(stem))
        for stem in sorted(images.keys() | masks.keys())
    ]
