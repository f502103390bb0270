"""`segpipe predict`: segment image files with a published model, into class-index PNG masks
and colour overlays. Needs the train extra (TensorFlow), imported when a model is loaded."""

from __future__ import annotations

import os
import sys
from collections import defaultdict, deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TextIO

import numpy as np

from components.common.data.image_files import (
    IMAGE_EXTENSIONS,
    ImageTooLarge,
    UnreadableImage,
    has_image_extension,
    local_glob,
    not_a_file,
    read_image,
    split_glob,
    to_display_image,
)
from components.common.overlay import blend, png_bytes
from components.common.progress import Bar
from components.common.saved_model import (
    CLASS_IDS,
    IMAGE_BYTES,
    SEGMENT_SIGNATURE,
    SERVING_SIGNATURE,
    load_signatures,
    read_model_info,
    segment_signature,
    segmenter,
)
from components.common.settings.config import DEFAULT_MAX_PIXELS

BATCH_SIZE = 4  # images of one size through the model together


@dataclass(frozen=True)
class InputImage:
    """An image to segment and its output name: its path below the input root, sans suffix."""

    path: str
    name: str


@dataclass(frozen=True)
class Prediction:
    source: str
    mask_path: str
    overlay_path: str


@dataclass(frozen=True)
class Skipped:
    source: str
    reason: str


@dataclass(frozen=True)
class PredictResult:
    """What predict wrote, and each input it could not segment with the reason."""

    written: list[Prediction]
    skipped: list[Skipped]


def resolve_model(model: str) -> str:
    """A local SavedModel folder for `model`: a folder as is, or `models:/NAME@ALIAS|/VERSION`."""
    if not model.startswith("models:/"):
        if not os.path.isfile(os.path.join(model, "saved_model.pb")):
            raise FileNotFoundError(f"{model} is not a SavedModel folder (no saved_model.pb)")
        return model
    from mlflow.tracking import MlflowClient

    from components.common.tracking.registry import download_version
    from components.common.tracking.runs import check_reachable, check_store_exists, tracking_uri

    reference = model.removeprefix("models:/")
    uri = tracking_uri()
    check_store_exists(uri, "segpipe predict --model models:/...")
    check_reachable(uri)
    client = MlflowClient(uri)
    if "@" in reference:
        name, alias = reference.split("@", 1)
        version = client.get_model_version_by_alias(name, alias)
    else:
        name, _, number = reference.partition("/")
        if not number:
            raise ValueError(f"{model}: expected models:/NAME@ALIAS or models:/NAME/VERSION")
        version = client.get_model_version(name, number)
    return download_version(version)


def find_inputs(spec: str, exclude: str | None = None) -> list[InputImage]:
    """The images of a folder (recursively), a glob or one file, sorted, with output names.

    Folders are walked following links to folders once each (a link loop is never
    followed); `exclude` is a folder left out (the output folder, when it lies inside).
    Output names keep the sub-folders below the folder (or the glob's fixed part).
    """
    root, files = spec, []
    if os.path.isdir(spec):
        files = _walk(spec, exclude)
    elif os.path.lexists(spec):
        if not has_image_extension(spec):
            raise ValueError(
                f"{spec} is not a supported image format ({' '.join(IMAGE_EXTENSIONS)})"
            )
        root, files = os.path.dirname(spec) or ".", [spec]
    elif any(char in spec for char in "*?["):
        root, files = split_glob(spec)[0], [p for p in local_glob(spec) if _is_image_name(p)]
    if not files:
        raise FileNotFoundError(f"no image files ({', '.join(IMAGE_EXTENSIONS)}) match {spec}")
    names = output_names(files, root)
    return [InputImage(path, name) for path, name in zip(files, names, strict=True)]


def _is_image_name(path: str) -> bool:
    return has_image_extension(path) and not os.path.basename(path).startswith(".")


def _walk(root: str, exclude: str | None) -> list[str]:
    """Image-named entries under `root`; each real folder visited once, hidden ones skipped."""
    skip = {os.path.realpath(exclude)} if exclude else set()
    visited: set[str] = set()
    found = []
    for folder, subfolders, names in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in visited or real in skip:
            subfolders[:] = []
            continue
        visited.add(real)
        subfolders[:] = sorted(name for name in subfolders if not name.startswith("."))
        found += [os.path.join(folder, name) for name in sorted(names) if _is_image_name(name)]
    return sorted(found)


def output_names(files: list[str], root: str) -> list[str]:
    """Each file's path below `root` without its extension, the extension kept where needed.

    `x.png` and `x.jpg` in one folder become `x.png` and `x.jpg`, so neither overwrites the
    other; names are compared ignoring case, as on macOS and Windows disks.
    """
    relative = [os.path.relpath(path, root) for path in files]
    names = [os.path.splitext(rel)[0] for rel in relative]
    while True:
        groups: dict[str, list[int]] = defaultdict(list)
        for index, name in enumerate(names):
            groups[name.lower()].append(index)
        clashes = [index for group in groups.values() if len(group) > 1 for index in group]
        if not clashes:
            return names
        for index in clashes:  # a full relative path is unique: this ends
            names[index] = relative[index]


def _model_info(model_dir: str) -> dict:
    """The export's model info; without one, the full palette (colours stay distinct)."""
    return read_model_info(model_dir) or {"num_classes": 256}


def _read(path: str, max_pixels: int):
    """The decoded image at `path`; raises UnreadableImage or ImageTooLarge."""
    reason = not_a_file(path)
    if reason:
        raise UnreadableImage(reason)
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as error:
        raise UnreadableImage(str(error)) from error
    return read_image(data, max_pixels)


def batch_segmenter(model_dir: str, signature: str = SEGMENT_SIGNATURE):
    """A function: uint8 [N, H, W, 3] pixels (one size) -> uint8 [N, H, W] class ids, by the
    export's `signature` (`segment` or `segment_no_tta`)."""
    import tensorflow as tf

    signatures = load_signatures(model_dir)
    if SEGMENT_SIGNATURE in signatures:
        segment = segmenter(signatures, signature)
        return lambda batch: np.asarray(segment(tf.constant(batch)))
    serve = signatures[SERVING_SIGNATURE]  # older exports: PNG bytes, one image a call

    def one_by_one(batch):
        return np.stack(
            [
                np.asarray(serve(**{IMAGE_BYTES: tf.constant(png_bytes(pixels))})[CLASS_IDS])
                for pixels in batch
            ]
        )

    return one_by_one


@dataclass
class _Loaded:
    """An input decoded for the model (`seen`) and for the overlay (`colour`), or why not."""

    item: InputImage
    colour: np.ndarray | None = None
    seen: np.ndarray | None = None
    skipped: str = ""


def _load(item: InputImage, max_pixels: int, grayscale: bool) -> _Loaded:
    try:
        image = _read(item.path, max_pixels)
    except (UnreadableImage, ImageTooLarge) as error:
        return _Loaded(item, skipped=str(error))
    colour = np.asarray(to_display_image(image, grayscale=False))
    seen = colour
    if grayscale:  # as the shards: one grey channel, read back as three
        seen = np.asarray(to_display_image(image, grayscale=True).convert("RGB"))
    return _Loaded(item, colour, seen)


def _write(loaded: _Loaded, class_ids: np.ndarray, output_dir: str, classes: int) -> Prediction:
    name = loaded.item.name
    mask_path = os.path.join(output_dir, f"{name}_mask.png")
    overlay_path = os.path.join(output_dir, f"{name}_overlay.png")
    os.makedirs(os.path.dirname(mask_path), exist_ok=True)
    with open(mask_path, "wb") as handle:
        handle.write(png_bytes(class_ids.astype(np.uint8)))
    with open(overlay_path, "wb") as handle:
        handle.write(png_bytes(blend(loaded.colour, class_ids, classes)))
    return Prediction(loaded.item.path, mask_path, overlay_path)


def _ahead(pool: ThreadPoolExecutor, work, items, depth: int):
    """`work(item)` for each item, run in `pool` at most `depth` ahead of the consumer."""
    pending: deque[Future] = deque()
    for item in items:
        pending.append(pool.submit(work, item))
        if len(pending) > depth:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def _batches(loaded, batch_size: int):
    """Consecutive decoded inputs of one size, up to `batch_size` together; skips alone."""
    batch: list[_Loaded] = []
    for one in loaded:
        if one.skipped or (batch and one.seen.shape != batch[0].seen.shape):
            if batch:
                yield batch
            batch = []
        if one.skipped:
            yield [one]
            continue
        batch.append(one)
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def predict(
    model: str,
    inputs: str,
    output_dir: str,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    progress_stream: TextIO | None = None,
    batch_size: int = BATCH_SIZE,
    tta: bool = True,
) -> PredictResult:
    """Segment each input; write `<name>_mask.png` and `<name>_overlay.png` under `output_dir`.

    Images are decoded as preprocess decodes them (any format it reads, EXIF orientation,
    16-bit, alpha; grey when the model was trained on grey). An input over `max_pixels`,
    or unreadable, is skipped with the reason; the others are still written. A progress bar
    goes to `progress_stream` (default: stderr). Decoding and writing run in threads beside
    the model, a few images ahead (memory stays bounded); images of one size go through the
    model `batch_size` at a time; with the export's test-time augmentation, or without where
    not `tta` (one pass per image: faster, and not the model the gate scored).
    """
    if max_pixels < 1:
        raise ValueError(f"max_pixels={max_pixels} must be 1 or more")
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be 1 or more")
    found = find_inputs(inputs, exclude=output_dir)  # before TensorFlow: a typo fails fast
    model_dir = resolve_model(model)
    info = _model_info(model_dir)
    segment = batch_segmenter(model_dir, segment_signature(model_dir, info, tta))
    classes, grayscale = int(info["num_classes"]), bool(info.get("grayscale"))
    written: list[Future] = []
    writing: deque[Future] = deque()  # not known to be done yet
    skipped = []
    bar = Bar(progress_stream or sys.stderr, len(found), "images")
    done = 0
    with ThreadPoolExecutor(2) as readers, ThreadPoolExecutor(2) as writers:
        loaded = _ahead(
            readers, lambda item: _load(item, max_pixels, grayscale), found, 2 * batch_size
        )
        for batch in _batches(loaded, batch_size):
            bar.update(done, prefix="predict  ")
            done += len(batch)
            if batch[0].skipped:
                skipped.append(Skipped(batch[0].item.path, batch[0].skipped))
                continue
            class_ids = segment(np.stack([one.seen for one in batch]))
            for one, ids in zip(batch, class_ids, strict=True):
                one.seen = None
                written.append(writers.submit(_write, one, ids, output_dir, classes))
                writing.append(written[-1])
            while len(writing) > 2 * batch_size:  # writing fell behind: let it catch up
                writing.popleft().result()
    results = [future.result() for future in written]
    bar.update(len(found), prefix="predict  ")
    bar.clear()
    return PredictResult(results, skipped)
