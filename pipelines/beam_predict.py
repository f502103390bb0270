"""`segpipe predict --runner ...`: batch inference as an Apache Beam job (RunInference), for
more images than one machine segments in time. The same masks and overlays as the local
predict, from the same decoding and the same `segment` signature; inputs, model and outputs
local or gs:// (on a cluster, a path every worker reads). Workers need TensorFlow and Pillow:
the segpipe-trainer image, or `pip install 'segpipe[train,preprocess]'`."""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import apache_beam as beam
import numpy as np
from apache_beam.ml.inference.base import (
    KeyedModelHandler,
    ModelHandler,
    PredictionResult,
    RunInference,
)
from apache_beam.options.pipeline_options import PipelineOptions

from components.common import storage
from components.common.data.image_files import (
    ImageTooLarge,
    UnreadableImage,
    has_image_extension,
    read_image,
    to_display_image,
)
from components.common.overlay import blend, png_bytes
from components.common.saved_model import MODEL_INFO_FILE, segment_signature
from pipelines.predict import (
    BATCH_SIZE,
    InputImage,
    Prediction,
    PredictResult,
    Skipped,
    find_inputs,
    output_names,
    resolve_model,
)

SKIPPED = "skipped"
SKIPPED_FILE = "skipped.jsonl"  # in the output folder: each input not segmented, and why
WRITTEN_FILE = "written.jsonl"  # each input segmented, its mask and overlay (in no order)


class SavedModelSegmenter(ModelHandler[np.ndarray, PredictionResult, Any]):
    """RunInference's handler for a segpipe export: the `segment` signature, on images of one
    size at a time (a batch of mixed sizes is split by size). Beam's own TensorFlow handler
    loads models with Keras (a Keras 3 model cannot load a SavedModel) and needs
    tensorflow_hub, so this one calls the SavedModel's signature directly."""

    def __init__(self, model_dir: str, signature: str, batch_size: int = BATCH_SIZE):
        super().__init__()
        self._model_dir = model_dir
        self._signature = signature
        self._batch_size = batch_size

    def load_model(self):
        from pipelines.predict import batch_segmenter

        return batch_segmenter(self._model_dir, self._signature)

    def run_inference(
        self, batch: Sequence[np.ndarray], model, inference_args: dict | None = None
    ) -> Iterable[PredictionResult]:
        results: list[PredictionResult | None] = [None] * len(batch)
        by_shape: dict[tuple, list[int]] = {}
        for index, pixels in enumerate(batch):
            by_shape.setdefault(pixels.shape, []).append(index)
        for indices in by_shape.values():
            class_ids = model(np.stack([batch[i] for i in indices]))
            for i, ids in zip(indices, class_ids, strict=True):
                results[i] = PredictionResult(batch[i], ids)
        return results

    def batch_elements_kwargs(self) -> dict[str, int]:
        return {"min_batch_size": 1, "max_batch_size": self._batch_size}

    def share_model_across_processes(self) -> bool:
        return False


class Decode(beam.DoFn):
    """An input's pixels as the model sees them, keyed by (input, colour pixels for the
    overlay where they differ); an input that cannot be read goes to SKIPPED with why."""

    def __init__(self, max_pixels: int, grayscale: bool):
        self._max_pixels = max_pixels
        self._grayscale = grayscale

    def process(self, item: InputImage) -> Iterator:
        try:
            with beam.io.filesystems.FileSystems.open(item.path) as handle:
                data = handle.read()
            image = read_image(data, self._max_pixels)
        except (UnreadableImage, ImageTooLarge, OSError) as error:
            reason = " ".join(str(error).split()) or type(error).__name__
            yield beam.pvalue.TaggedOutput(SKIPPED, {"source": item.path, "reason": reason})
            return
        colour = np.asarray(to_display_image(image, grayscale=False))
        if not self._grayscale:
            yield (item, None), colour
            return
        seen = np.asarray(to_display_image(image, grayscale=True).convert("RGB"))
        yield (item, colour), seen


def write_outputs(keyed: tuple, output_dir: str, classes: int) -> dict[str, str]:
    """`<name>_mask.png` and `<name>_overlay.png` of one segmented input."""
    from apache_beam.io.filesystems import FileSystems

    (item, colour), result = keyed
    class_ids = np.asarray(result.inference).astype(np.uint8)
    colour = result.example if colour is None else colour
    mask_path = storage.join(output_dir, f"{item.name}_mask.png")
    overlay_path = storage.join(output_dir, f"{item.name}_overlay.png")
    with FileSystems.create(mask_path) as handle:
        handle.write(png_bytes(class_ids))
    with FileSystems.create(overlay_path) as handle:
        handle.write(png_bytes(blend(colour, class_ids, classes)))
    return {"source": item.path, "mask": mask_path, "overlay": overlay_path}


def _sorted_lines(records, label: str, key: str):
    """Each record as a JSON line, sorted by `key` (the same file on every runner); for the
    few records that are skipped inputs, not for all."""
    return (
        records
        | f"{label}ToJson" >> beam.Map(lambda r: (r[key], json.dumps(r, sort_keys=True)))
        | f"Collect{label}" >> beam.combiners.ToList()
        | f"Sort{label}" >> beam.FlatMap(lambda keyed: [line for _, line in sorted(keyed)])
    )


def list_inputs(spec: str, output_dir: str) -> list[InputImage]:
    """The images to segment: a local folder, glob or file as the local predict finds them,
    or every image under a gs:// folder (its sub-folders mirrored in the output)."""
    if not spec.startswith("gs://"):
        return find_inputs(spec, exclude=output_dir)
    root = spec.rstrip("/")
    files = sorted(p for p in storage.files_under(root) if has_image_extension(p))
    if not files:
        raise FileNotFoundError(f"no image files under {spec}")
    names = output_names([p.removeprefix(root + "/") for p in files], ".")
    return [InputImage(path, name) for path, name in zip(files, names, strict=True)]


def model_folder(model: str) -> str:
    """The SavedModel folder the workers load: a folder (local or gs://) as is, a registry
    reference downloaded (to this machine's disk: for the DirectRunner only)."""
    if model.startswith("models:/"):
        return resolve_model(model)
    if not storage.exists(storage.join(model, "saved_model.pb")):
        raise FileNotFoundError(f"{model} is not a SavedModel folder (no saved_model.pb)")
    return model


def _model_info(model_dir: str) -> dict:
    path = storage.join(model_dir, MODEL_INFO_FILE)
    return storage.read_json(path) if storage.exists(path) else {"num_classes": 256}


def predict_on_beam(
    model: str,
    inputs: str,
    output_dir: str,
    runner: str,
    beam_options: str = "",
    max_pixels: int = 0,
    batch_size: int = BATCH_SIZE,
    tta: bool = True,
) -> PredictResult:
    """Segment each input in a Beam job on `runner` (with the export's test-time augmentation
    unless not `tta`); masks and overlays as `predict` writes them, plus `written.jsonl` and
    `skipped.jsonl` (sorted by input) in `output_dir`."""
    from components.common.settings.config import DEFAULT_MAX_PIXELS

    max_pixels = max_pixels or DEFAULT_MAX_PIXELS
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be 1 or more")
    if model.startswith("models:/") and runner != "DirectRunner":  # before any work
        raise ValueError(
            f"--model {model}: with --runner {runner} give the exported SavedModel folder "
            "(local or gs://, readable by every worker), not a registry reference"
        )
    found = list_inputs(inputs, output_dir)
    model_dir = model_folder(model)
    info = _model_info(model_dir)
    signature = segment_signature(model_dir, info, tta)
    classes, grayscale = int(info["num_classes"]), bool(info.get("grayscale"))
    options = PipelineOptions(flags=shlex.split(beam_options), runner=runner)
    runner_object = None
    if runner == "DirectRunner":  # not Prism (downloads a binary; see preprocess)
        from apache_beam.runners.portability.fn_api_runner import FnApiRunner

        runner_object = FnApiRunner()
    handler = KeyedModelHandler(SavedModelSegmenter(model_dir, signature, batch_size))
    with beam.Pipeline(runner=runner_object, options=options) as root:
        decoded = (
            root
            | "Inputs" >> beam.Create(found, reshuffle=True)
            | "Decode"
            >> beam.ParDo(Decode(max_pixels, grayscale)).with_outputs(SKIPPED, main="decoded")
        )
        written = (
            decoded.decoded
            | "Segment" >> RunInference(handler)
            | "Write" >> beam.Map(write_outputs, output_dir, classes)
        )
        _ = (
            written
            | "WrittenToJson" >> beam.Map(lambda r: json.dumps(r, sort_keys=True))
            | "WriteWritten" >> _text_file(storage.join(output_dir, WRITTEN_FILE))
        )
        _ = _sorted_lines(decoded[SKIPPED], "Skipped", "source") | "WriteSkipped" >> _text_file(
            storage.join(output_dir, SKIPPED_FILE)
        )
    return _result(output_dir)


def _text_file(path: str) -> beam.io.WriteToText:
    return beam.io.WriteToText(path, shard_name_template="")


def _result(output_dir: str) -> PredictResult:
    def records(name: str) -> list[dict]:
        text = storage.read_text(storage.join(output_dir, name))
        return [json.loads(line) for line in text.splitlines() if line]

    written = [Prediction(r["source"], r["mask"], r["overlay"]) for r in records(WRITTEN_FILE)]
    skipped = [Skipped(r["source"], r["reason"]) for r in records(SKIPPED_FILE)]
    return PredictResult(written, skipped)
