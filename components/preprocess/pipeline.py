"""The Beam job: list pairs -> encode or reject -> split -> sharded TFRecords + stats + rejects."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence

import apache_beam as beam
import numpy as np
from apache_beam.options.pipeline_options import PipelineOptions

from components.common import storage
from components.common.config import IGNORE_LABEL, PreprocessConfig
from components.common.dataset import DatasetInfo, class_names_for, write_dataset_info
from components.preprocess.examples import RejectedInput, encode_pair
from components.preprocess.sources import SourcePair, list_paired_folders
from components.preprocess.split import SPLITS, assign_split

REJECTED = "rejected"
log = logging.getLogger(__name__)


class EncodePair(beam.DoFn):
    """Encodes a pair to (split, example); rejects go to the REJECTED output with a reason."""

    def __init__(self, config: PreprocessConfig):
        self._config = config

    def process(self, pair: SourcePair) -> Iterator:
        config = self._config
        try:
            encoded = encode_pair(pair, config.image_height, config.image_width, config.num_classes)
        except RejectedInput as rejected:
            yield beam.pvalue.TaggedOutput(
                REJECTED,
                {
                    "source_id": pair.source_id,
                    "image": pair.image_path,
                    "mask": pair.mask_path,
                    "reason": rejected.reason,
                    "detail": rejected.detail,
                },
            )
            return
        yield assign_split(encoded.source_id, config.val_fraction), encoded


class SumClassPixels(beam.CombineFn):
    """Per split: (number of examples, pixel count per class)."""

    def __init__(self, num_classes: int):
        self._num_classes = num_classes

    def create_accumulator(self) -> tuple[int, np.ndarray]:
        return 0, np.zeros(self._num_classes, dtype=np.int64)

    def add_input(self, accumulator, class_pixels):
        return accumulator[0] + 1, accumulator[1] + class_pixels

    def merge_accumulators(self, accumulators):
        counts, pixels = zip(*accumulators, strict=True)
        return sum(counts), np.sum(pixels, axis=0)

    def extract_output(self, accumulator):
        return accumulator


def format_stats(
    per_split: list[tuple[str, tuple[int, np.ndarray]]],
    reject_reasons: list[tuple[str, int]],
    num_classes: int,
) -> str:
    """The stats JSON: examples and class pixels per split, rejects per reason."""
    splits = {name: {"examples": 0, "class_pixels": [0] * num_classes} for name in SPLITS}
    for split, (count, pixels) in per_split:
        splits[split] = {"examples": int(count), "class_pixels": [int(v) for v in pixels]}
    rejects = dict(sorted(reject_reasons))
    written = sum(s["examples"] for s in splits.values())
    return json.dumps(
        {
            "splits": splits,
            "examples_written": written,
            "rejected": sum(rejects.values()),
            "rejects_by_reason": rejects,
            "inputs": written + sum(rejects.values()),
            "num_classes": num_classes,
            "ignore_label": IGNORE_LABEL,
        },
        indent=2,
        sort_keys=True,
    )


def _runner(config: PreprocessConfig):
    """The runner to use; for DirectRunner, the FnApiRunner it would fall back to.

    Beam's DirectRunner first tries Prism, which downloads a binary from GitHub (it fails or
    hangs offline) and ignores `direct_running_mode`; the FnApiRunner honours both direct
    options and runs the batch job in one worker process per core.
    """
    if config.runner == "DirectRunner":
        from apache_beam.runners.portability.fn_api_runner import FnApiRunner

        return FnApiRunner()
    return None  # resolved by Beam from the `runner` option


def pipeline_options(config: PreprocessConfig, beam_args: Sequence[str] = ()) -> PipelineOptions:
    """Beam options with the runner named explicitly; `beam_args` pass through untouched."""
    options = {"runner": config.runner}
    if config.runner == "DirectRunner":
        options["direct_running_mode"] = config.direct_running_mode
        if config.direct_running_mode != "in_memory":
            options["direct_num_workers"] = 0  # one worker per core
    return PipelineOptions(flags=list(beam_args), **options)


def build(root: beam.Pipeline, pairs: list[SourcePair], output_dir: str, config: PreprocessConfig):
    """Wire the transforms onto `root`."""
    results = (
        root
        | "ListPairs" >> beam.Create(pairs, reshuffle=True)
        | "EncodeOrReject" >> beam.ParDo(EncodePair(config)).with_outputs(REJECTED, main="encoded")
    )
    encoded, rejected = results.encoded, results[REJECTED]

    by_split = encoded | "BySplit" >> beam.Partition(lambda kv, _: SPLITS.index(kv[0]), len(SPLITS))
    for split, examples in zip(SPLITS, by_split, strict=True):
        _ = (
            examples
            | f"Serialize_{split}" >> beam.Map(lambda kv: kv[1].serialized)
            | f"Write_{split}"
            >> beam.io.WriteToTFRecord(
                storage.join(output_dir, split, split),
                file_name_suffix=".tfrecord",
                num_shards=config.num_shards,
            )
        )

    split_stats = (
        encoded
        | "ClassPixels" >> beam.Map(lambda kv: (kv[0], kv[1].class_pixels))
        | "SumPerSplit" >> beam.CombinePerKey(SumClassPixels(config.num_classes))
        | "CollectSplits" >> beam.combiners.ToList()
    )
    reason_counts = (
        rejected
        | "Reason" >> beam.Map(lambda r: r["reason"])
        | "CountReasons" >> beam.combiners.Count.PerElement()
        | "CollectReasons" >> beam.combiners.ToList()
    )
    _ = (
        split_stats
        | "FormatStats"
        >> beam.Map(format_stats, beam.pvalue.AsSingleton(reason_counts), config.num_classes)
        | "WriteStats"
        >> beam.io.WriteToText(
            storage.join(output_dir, "stats"), file_name_suffix=".json", shard_name_template=""
        )
    )
    _ = (
        rejected
        | "RejectToJson" >> beam.Map(lambda r: json.dumps(r, sort_keys=True))
        | "WriteRejects"
        >> beam.io.WriteToText(
            storage.join(output_dir, "rejects"), file_name_suffix=".jsonl", shard_name_template=""
        )
    )


def run_preprocess(
    data_dir: str, output_dir: str, config: PreprocessConfig, beam_args: Sequence[str] = ()
) -> dict:
    """Run the Beam job over the paired folders in `data_dir`; returns the stats written."""
    info = DatasetInfo(
        num_classes=config.num_classes,
        class_names=class_names_for(config.num_classes, config.class_names),
        image_height=config.image_height,
        image_width=config.image_width,
        ignore_label=IGNORE_LABEL,
    )
    pairs = list_paired_folders(data_dir)
    log.info("preprocess: %d inputs from %s -> %s", len(pairs), data_dir, output_dir)
    options = pipeline_options(config, beam_args)
    with beam.Pipeline(runner=_runner(config), options=options) as root:
        build(root, pairs, output_dir, config)
    stats = storage.read_json(storage.join(output_dir, "stats.json"))
    if stats["inputs"] != len(pairs):
        raise RuntimeError(f"{len(pairs)} inputs but {stats['inputs']} written or rejected")
    write_dataset_info(output_dir, info)
    return stats
