"""Segment image files with a published model: class-index PNG masks and colour overlays."""

from __future__ import annotations

import glob
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
MODEL_INFO_FILE = "segpipe_model.json"  # written next to the SavedModel by the train export


@dataclass(frozen=True)
class Prediction:
    source: str
    mask_path: str
    overlay_path: str


def resolve_model(model: str) -> str:
    """A local SavedModel folder for `model`: a folder as is, or `models:/NAME@ALIAS|/VERSION`."""
    if not model.startswith("models:/"):
        if not os.path.isfile(os.path.join(model, "saved_model.pb")):
            raise FileNotFoundError(f"{model} is not a SavedModel folder (no saved_model.pb)")
        return model
    from mlflow.tracking import MlflowClient

    from components.common.registry import download_version
    from components.common.tracking import check_reachable, tracking_uri

    reference = model.removeprefix("models:/")
    uri = tracking_uri()
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


def find_inputs(pattern: str) -> list[str]:
    """Image files in a folder (recursively) or matching a glob, sorted."""
    if os.path.isdir(pattern):
        pattern = os.path.join(pattern, "**", "*")
    files = sorted(
        path
        for path in glob.glob(pattern, recursive=True)
        if os.path.isfile(path) and path.lower().endswith(IMAGE_SUFFIXES)
    )
    if not files:
        raise FileNotFoundError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) match {pattern}")
    return files


def _output_names(files: list[str]) -> list[str]:
    """Names that keep sub-folders apart: a/x.png and b/x.png must not overwrite each other."""
    root = os.path.commonpath([os.path.dirname(os.path.abspath(f)) for f in files])
    names = []
    for path in files:
        relative = os.path.relpath(os.path.abspath(path), root)
        names.append(os.path.splitext(relative)[0].replace(os.sep, "__"))
    return names


def progress(items: list, label: str) -> Iterator:
    """tqdm when installed, else a plain counter on stderr."""
    try:
        from tqdm import tqdm
    except ImportError:
        total = len(items)
        for index, item in enumerate(items, start=1):
            yield item
            sys.stderr.write(f"\r{label}: {index}/{total}")
            sys.stderr.flush()
        sys.stderr.write("\n")
        return
    yield from tqdm(items, desc=label, unit="image")


def _num_classes(model_dir: str) -> int:
    """From the export's model info; unknown: the full palette (colours stay distinct)."""
    info = os.path.join(model_dir, MODEL_INFO_FILE)
    if os.path.isfile(info):
        with open(info, encoding="utf-8") as handle:
            return int(json.load(handle)["num_classes"])
    return 256


def predict(model: str, inputs: str, output_dir: str) -> list[Prediction]:
    """Run the model's `serving_default` on each input; write `<name>_mask.png` + `_overlay.png`."""
    from PIL import Image

    from components.common.overlay import blend, png_bytes

    files = find_inputs(inputs)  # before loading TensorFlow: a typo fails in a second
    model_dir = resolve_model(model)
    import tensorflow as tf

    serve = tf.saved_model.load(model_dir).signatures["serving_default"]
    num_classes = _num_classes(model_dir)
    os.makedirs(output_dir, exist_ok=True)
    written = []
    for path, name in progress(list(zip(files, _output_names(files), strict=True)), "predict"):
        with open(path, "rb") as handle:
            data = handle.read()
        class_ids = serve(image_bytes=tf.constant(data))["class_ids"].numpy().astype(np.uint8)
        with Image.open(path) as opened:
            image = np.asarray(opened.convert("RGB"))
        mask_path = os.path.join(output_dir, f"{name}_mask.png")
        overlay_path = os.path.join(output_dir, f"{name}_overlay.png")
        with open(mask_path, "wb") as handle:
            handle.write(png_bytes(class_ids))
        with open(overlay_path, "wb") as handle:
            handle.write(png_bytes(blend(image, class_ids, num_classes)))
        written.append(Prediction(path, mask_path, overlay_path))
    return written
