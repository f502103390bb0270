"""Find image + mask pairs: paired folders, paired globs, list files, Pascal VOC."""

from __future__ import annotations

import dataclasses
import os
import posixpath
import re
from collections.abc import Iterable
from dataclasses import dataclass

from components.common import storage
from components.common.data.image_files import (
    IMAGE_EXTENSIONS,
    extension,
    has_image_extension,
    is_utf8,
    local_glob,
    not_a_file,
    printable,
)
from components.common.settings.config import LAYOUTS


@dataclass(frozen=True)
class SourcePair:
    """One input: an image and its mask (None when missing); `split` when the layout sets it.

    `problem` is a (reason, detail) reject found while listing: the pair is rejected with it.
    """

    source_id: str
    image_path: str | None
    mask_path: str | None
    split: str | None = None
    problem: tuple[str, str] | None = None


def _stem(path: str) -> str:
    return posixpath.splitext(posixpath.basename(path))[0]


def resolve_path(data_dir: str, path: str) -> str:
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
                f"{printable(first.image_path or first.mask_path or '')} and "
                f"{printable(pair.image_path or pair.mask_path or '')}"
            )
        seen[pair.source_id] = pair
    return [seen[key] for key in sorted(seen)]


def _matches(pattern: str) -> list[str]:
    """Every name matching a local or gs:// glob; locally, folders and dangling links too."""
    return storage.glob(pattern) if "://" in pattern else local_glob(pattern)


def _unsupported(path: str) -> str:
    return (
        f"{printable(path)}: {extension(path)} is not a supported image format "
        f"({' '.join(IMAGE_EXTENSIONS)})"
    )


@dataclass(frozen=True)
class _Listing:
    """A folder or glob's image-named entries by stem, and the other files as rejects."""

    by_stem: dict[str, str]
    others: list[SourcePair]


def _list_images(pattern: str, role: str = "image") -> _Listing:
    """Names matching `pattern`: image-named ones by stem; any other file, a reject.

    `role` ("image" or "mask") says which path of the reject it is. Hidden names
    (.DS_Store, ._x.png) are not inputs.
    """
    by_stem: dict[str, str] = {}
    others = []
    for path in _matches(pattern):
        name = posixpath.basename(path)
        if name.startswith("."):
            continue
        if has_image_extension(path):
            stem = _stem(path)
            if stem in by_stem:
                raise ValueError(
                    f"two files resolve to the same source id {printable(stem)!r}: "
                    f"{printable(by_stem[stem])} and {printable(path)}"
                )
            by_stem[stem] = path
        elif not os.path.isdir(path):  # a sub-folder not named like an image is no input
            paths = (path, None) if role == "image" else (None, path)
            problem = ("unsupported_format", _unsupported(path))
            others.append(SourcePair(printable(name), *paths, None, problem))
    return _Listing(by_stem, others)


def _checked(pair: SourcePair) -> SourcePair:
    """`pair` with the first problem its paths show (not UTF-8, not a file, not an image
    format) ahead of one found while listing (a missing half, an unmatched name)."""
    for check in (_name_not_utf8, _not_a_file, _not_an_image_format):
        for path in (pair.image_path, pair.mask_path):
            found = path and check(path)
            if found:
                return dataclasses.replace(pair, problem=found)
    return pair


def _name_not_utf8(path: str) -> tuple[str, str] | None:
    if is_utf8(path):
        return None
    return ("non_utf8_name", f"{printable(path)}: the file name is not UTF-8")


def _not_a_file(path: str) -> tuple[str, str] | None:
    reason = not_a_file(path)
    return ("not_a_file", f"{printable(path)}: {reason}") if reason else None


def _not_an_image_format(path: str) -> tuple[str, str] | None:
    return None if has_image_extension(path) else ("unsupported_format", _unsupported(path))


def list_sources(data_dir: str, config) -> list[SourcePair]:
    """The pairs of `data_dir` in the layout `config.layout` (a PreprocessConfig)."""
    if config.layout == "paired-folders":
        pairs = list_paired_folders(data_dir)
    elif config.layout == "paired-globs":
        pairs = list_paired_globs(
            data_dir, config.image_glob, config.mask_pattern, config.image_name_regex()
        )
    elif config.layout == "list-files":
        pairs = list_list_files(data_dir, config.list_files, config.strip_prefix)
    elif config.layout == "voc":
        pairs = list_voc(data_dir)
    else:
        raise ValueError(f"unknown layout {config.layout!r}; choose one of {', '.join(LAYOUTS)}")
    return [_checked(pair) for pair in pairs]


def list_paired_folders(data_dir: str) -> list[SourcePair]:
    """`images/NAME.*` with `masks/NAME.*`; half pairs and other files included, as rejects."""
    images_dir, masks_dir = storage.join(data_dir, "images"), storage.join(data_dir, "masks")
    images = _list_images(storage.join(images_dir, "*"))
    masks = _list_images(storage.join(masks_dir, "*"), role="mask")
    if not images.by_stem and not masks.by_stem and not images.others:
        raise FileNotFoundError(
            f"no images found under {images_dir} (expected images/NAME.png + masks/NAME.png)"
        )
    pairs = []
    for stem in sorted(images.by_stem.keys() | masks.by_stem.keys()):
        image, mask = images.by_stem.get(stem), masks.by_stem.get(stem)
        problem = None
        if image is None:
            problem = (
                "missing_image",
                f"no image for mask {printable(mask)}: nothing named "
                f"{printable(stem)}.<image extension> in {images_dir}",
            )
        elif mask is None:
            problem = (
                "missing_mask",
                f"no mask for image {printable(image)}: nothing named "
                f"{printable(stem)}.<image extension> in {masks_dir}",
            )
        pairs.append(SourcePair(printable(stem), image, mask, None, problem))
    return pairs + images.others + masks.others


def _mask_for(stem: str, mask_pattern: str, regex: re.Pattern | None) -> str | None:
    """`mask_pattern` filled from `stem` and `regex`'s named groups; None when it does not match."""
    fields = {"stem": stem}
    if regex is not None:
        match = regex.fullmatch(stem)
        if match is None or None in match.groupdict().values():
            return None
        fields.update(match.groupdict())
    return mask_pattern.format(**fields)


def list_paired_globs(
    data_dir: str, image_glob: str, mask_pattern: str, regex: re.Pattern | None = None
) -> list[SourcePair]:
    """Images matching `image_glob`; each mask at `mask_pattern` filled from the image's name.

    `{stem}` is the image's name without extension; with `regex`, its named groups from the
    whole stem too (`img_(?P<id>\\d+)` on img_0001.tif, `masks/{id}_label.gif`).
    """
    images = _list_images(resolve_path(data_dir, image_glob))
    if not images.by_stem and not images.others:
        raise FileNotFoundError(f"no images match {resolve_path(data_dir, image_glob)}")
    pairs = []
    for stem, image in images.by_stem.items():
        mask = _mask_for(stem, mask_pattern, regex)
        if mask is None:
            detail = f"{printable(image)}: the name {printable(stem)!r} does not match image_regex "
            problem = ("unmatched_name", detail + repr(regex.pattern if regex else ""))
            pairs.append(SourcePair(printable(stem), image, None, None, problem))
        else:
            pairs.append(SourcePair(printable(stem), image, resolve_path(data_dir, mask)))
    return _unique_ids(_drop_missing(pairs)) + images.others


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
        resolved = resolve_path(data_dir, list_path)
        for number, line in enumerate(storage.read_text(resolved).splitlines(), start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 2:
                raise ValueError(f"{resolved}:{number}: expected 'image mask', got {line!r}")
            image, mask = (
                resolve_path(data_dir, f.removeprefix(strip_prefix) if strip_prefix else f)
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
    """Paths where nothing is replaced by None, with a reject naming the path looked for."""
    paths = {path for pair in pairs for path in (pair.image_path, pair.mask_path) if path}
    local = {path for path in paths if "://" not in path}
    # gs://: one listing per folder, not a request per object
    existing = {path for path in local if os.path.lexists(path)}
    existing |= set(storage.describe(paths - local))
    return [_mark_missing(pair, existing) for pair in pairs]


def _mark_missing(pair: SourcePair, existing: set[str]) -> SourcePair:
    image, mask = pair.image_path, pair.mask_path
    image_missing = image is not None and image not in existing
    mask_missing = mask is not None and mask not in existing
    if not (image_missing or mask_missing):
        return pair
    problem = pair.problem
    if problem is None and image_missing:
        problem = ("missing_image", f"no image at {printable(image)}")
    elif problem is None:
        problem = ("missing_mask", f"no mask for image {printable(image)} at {printable(mask)}")
    return dataclasses.replace(
        pair,
        image_path=None if image_missing else image,
        mask_path=None if mask_missing else mask,
        problem=problem,
    )
