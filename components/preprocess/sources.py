"""Find image + mask pairs: paired folders, paired globs, list files, Pascal VOC."""

from __future__ import annotations

import dataclasses
import posixpath
from collections.abc import Iterable
from dataclasses import dataclass

from components.common import storage

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif")
LAYOUTS = ("paired-folders", "paired-globs", "list-files", "voc")


@dataclass(frozen=True)
class SourcePair:
    """One input: an image and its mask (None when missing); `split` when the layout sets it."""

    source_id: str
    image_path: str | None
    mask_path: str | None
    split: str | None = None


def _stem(path: str) -> str:
    return posixpath.splitext(posixpath.basename(path))[0]


def _resolve(data_dir: str, path: str) -> str:
    """`path` as given when absolute or a URL, else relative to `data_dir`."""
    if "://" in path or path.startswith("/"):
        return path
    return storage.join(data_dir, path)


def _unique_ids(pairs: Iterable[SourcePair]) -> list[SourcePair]:
    """`pairs` sorted by id; two inputs with one id are an error, not a silent overwrite."""
    seen: dict[str, SourcePair] = {}
    for pair in pairs:
        if pair.source_id in seen:
            first = seen[pair.source_id]
            raise ValueError(
                f"two inputs resolve to the same source id {pair.source_id!r}: "
                f"{first.image_path or first.mask_path} and {pair.image_path or pair.mask_path}"
            )
        seen[pair.source_id] = pair
    return [seen[key] for key in sorted(seen)]


def _images_by_stem(pattern: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for path in storage.glob(pattern):
        if path.lower().endswith(IMAGE_EXTENSIONS):
            stem = _stem(path)
            if stem in found:
                raise ValueError(
                    f"two files resolve to the same source id {stem!r}: {found[stem]} and {path}"
                )
            found[stem] = path
    return found


def list_sources(data_dir: str, config) -> list[SourcePair]:
    """The pairs of `data_dir` in the layout `config.layout` (a PreprocessConfig)."""
    if config.layout == "paired-folders":
        return list_paired_folders(data_dir)
    if config.layout == "paired-globs":
        return list_paired_globs(data_dir, config.image_glob, config.mask_pattern)
    if config.layout == "list-files":
        return list_list_files(data_dir, config.list_files, config.strip_prefix)
    if config.layout == "voc":
        return list_voc(data_dir)
    raise ValueError(f"unknown layout {config.layout!r}; choose one of {', '.join(LAYOUTS)}")


def list_paired_folders(data_dir: str) -> list[SourcePair]:
    """`images/NAME.*` with `masks/NAME.*`; half pairs included, so they can be rejected."""
    images = _images_by_stem(storage.join(data_dir, "images", "*"))
    masks = _images_by_stem(storage.join(data_dir, "masks", "*"))
    if not images and not masks:
        raise FileNotFoundError(
            f"no images found under {storage.join(data_dir, 'images')} "
            "(expected images/NAME.png + masks/NAME.png)"
        )
    return [
        SourcePair(stem, images.get(stem), masks.get(stem))
        for stem in sorted(images.keys() | masks.keys())
    ]


def list_paired_globs(data_dir: str, image_glob: str, mask_pattern: str) -> list[SourcePair]:
    """Images matching `image_glob`; each mask at `mask_pattern` with `{stem}` filled in."""
    if "{stem}" not in mask_pattern:
        raise ValueError(f"mask pattern {mask_pattern!r} must contain the placeholder {{stem}}")
    images = _images_by_stem(_resolve(data_dir, image_glob))
    if not images:
        raise FileNotFoundError(f"no images match {_resolve(data_dir, image_glob)}")
    pairs = [
        SourcePair(stem, image, _resolve(data_dir, mask_pattern.format(stem=stem)))
        for stem, image in images.items()
    ]
    return _unique_ids(_drop_missing(pairs))


def parse_list_files(spec: str) -> list[tuple[str, str | None]]:
    """`train=a.txt,val=b.txt` or `train.txt,val.txt` (split from the file name) -> pairs."""
    parsed = []
    for item in filter(None, (part.strip() for part in spec.split(","))):
        split, sep, path = item.partition("=")
        if not sep:
            path, split = item, _stem(item)
        parsed.append((path, split if split in ("train", "val", "test") else None))
    if not parsed:
        raise ValueError("list-files layout needs --list-files, e.g. train.txt,val.txt,test.txt")
    return parsed


def list_list_files(data_dir: str, spec: str, strip_prefix: str = "") -> list[SourcePair]:
    """Lines of `image mask` paths; a list file named for a split sets that split."""
    pairs = []
    for list_path, split in parse_list_files(spec):
        resolved = _resolve(data_dir, list_path)
        for number, line in enumerate(storage.read_text(resolved).splitlines(), start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 2:
                raise ValueError(f"{resolved}:{number}: expected 'image mask', got {line!r}")
            image, mask = (
                _resolve(data_dir, f.removeprefix(strip_prefix) if strip_prefix else f)
                for f in fields
            )
            pairs.append(SourcePair(_stem(image), image, mask, split))
    return _unique_ids(_drop_missing(pairs))


def list_voc(data_dir: str) -> list[SourcePair]:
    """Pascal VOC: JPEGImages/ID.jpg + SegmentationClass/ID.png, splits from ImageSets."""
    sets_dir = storage.join(data_dir, "ImageSets", "Segmentation")
    pairs = []
    for split in ("train", "val", "test"):
        list_path = storage.join(sets_dir, f"{split}.txt")
        if not storage.exists(list_path):
            continue
        for image_id in storage.read_text(list_path).split():
            pairs.append(
                SourcePair(
                    image_id,
                    storage.join(data_dir, "JPEGImages", f"{image_id}.jpg"),
                    storage.join(data_dir, "SegmentationClass", f"{image_id}.png"),
                    split,
                )
            )
    if not pairs:
        raise FileNotFoundError(f"no ImageSets/Segmentation/{{train,val,test}}.txt in {data_dir}")
    return _unique_ids(_drop_missing(pairs))


def _drop_missing(pairs: list[SourcePair]) -> list[SourcePair]:
    """Paths that do not exist replaced by None, so those pairs are rejected with a reason."""
    paths = {path for pair in pairs for path in (pair.image_path, pair.mask_path) if path}
    existing = {path for path in paths if storage.exists(path)}
    return [
        dataclasses.replace(
            pair,
            image_path=pair.image_path if pair.image_path in existing else None,
            mask_path=pair.mask_path if pair.mask_path in existing else None,
        )
        for pair in pairs
    ]
