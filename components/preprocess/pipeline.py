"""The Beam job: list pairs -> plan shards -> encode or reject into them -> stats + rejects."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import shlex
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from components.common import storage
from components.common.data.dataset import DatasetInfo, class_names_for, write_dataset_info
from components.common.data.image_files import printable
from components.common.data.sources import SourcePair
from components.common.data.unused_files import IGNORED_FILE, list_inputs, write_ignored
from components.common.errors import SegpipeError
from components.common.settings.config import IGNORE_LABEL, PreprocessConfig
from components.preprocess.checks import check_classes, check_encoding, check_splits
from components.preprocess.examples import RejectedInput, encode_pair
from components.preprocess.split import SPLITS, assign_split
from components.preprocess.stats import (
    MaskValuesFn,
    SplitStatsFn,
    assemble_stats,
    stats_markdown,
    stats_table,
)

REJECTED = "rejected"
MASK_VALUES = "mask_values"
log = logging.getLogger(__name__)


class TooManyRejects(SegpipeError, RuntimeError):
    """More inputs were rejected than the configured fraction allows."""

    reason = "too-many-rejects"


@dataclass(frozen=True)
class PreprocessResult:
    stats: dict  # as written to stats.json
    report_markdown: str  # as written to stats.md
    ignored: int = 0  # files under the data root that are neither inputs nor rejects

    def counts(self) -> dict[str, int]:
        """Inputs read, rejected, files ignored, and examples written per split."""
        counts = {"inputs": self.stats["inputs"], "rejected": self.stats["rejected"]}
        counts["ignored"] = self.ignored
        counts.update({f"examples/{k}": v["examples"] for k, v in self.stats["splits"].items()})
        return counts


@dataclass(frozen=True)
class ShardTask:
    """One output file and the pairs that go into it: the Beam job's unit of work."""

    split: str
    index: int
    count: int
    pairs: tuple[SourcePair, ...]

    def path(self, output_dir: str) -> str:
        name = f"{self.split}-{self.index:05d}-of-{self.count:05d}.tfrecord"
        return storage.join(output_dir, self.split, name)


def plan_shards(pairs: Sequence[SourcePair], config: PreprocessConfig) -> list[ShardTask]:
    """Every pair placed in its split (the layout's, or the hash split) and a stable shard.

    Placement depends only on each pair's source id, so output files are deterministic and a
    retried shard is rewritten identically.
    """
    by_split: dict[str, list[SourcePair]] = {name: [] for name in SPLITS}
    for pair in pairs:
        split = pair.split or assign_split(
            pair.source_id, config.val_fraction, config.test_fraction
        )
        by_split[split].append(pair)
    tasks = []
    for split, members in by_split.items():
        count = shard_count(config, len(members))
        shards: list[list[SourcePair]] = [[] for _ in range(count)]
        for pair in members:
            shards[shard_of(pair.source_id, count)].append(pair)
        tasks += [ShardTask(split, i, count, tuple(shard)) for i, shard in enumerate(shards)]
    return tasks


class WriteShard(beam.DoFn):
    """Encodes a shard's pairs and streams them into its TFRecord file.

    Emits (split, stats of one example) for every written example, a reject record with a
    reason for every pair that could not be used, and the raw values of every mask it read.
    Nothing holds more than one example.
    """

    def __init__(self, output_dir: str, config: PreprocessConfig):
        self._output_dir = output_dir
        self._config = config

    def process(self, task: ShardTask) -> Iterator:
        from apache_beam.io.filesystems import FileSystems

        # Beam's own TFRecord framing (length, masked CRC32C), as WriteToTFRecord uses it.
        from apache_beam.io.tfrecordio import _TFRecordUtil

        with FileSystems.create(task.path(self._output_dir)) as handle:
            for pair in task.pairs:
                try:
                    encoded = encode_pair(pair, self._config)
                except RejectedInput as rejected:
                    if rejected.mask_values is not None:
                        yield beam.pvalue.TaggedOutput(MASK_VALUES, rejected.mask_values)
                    yield beam.pvalue.TaggedOutput(REJECTED, reject_record(pair, rejected))
                    continue
                _TFRecordUtil.write_record(handle, encoded.serialized)
                if encoded.mask_values is not None:
                    yield beam.pvalue.TaggedOutput(MASK_VALUES, encoded.mask_values)
                yield task.split, encoded.summary


def reject_record(pair: SourcePair, rejected: RejectedInput) -> dict:
    """A line of rejects.jsonl; paths whose names are not UTF-8 shown with \\xNN escapes."""
    return {
        "source_id": pair.source_id,
        "image": printable(pair.image_path) if pair.image_path else None,
        "mask": printable(pair.mask_path) if pair.mask_path else None,
        "reason": rejected.reason,
        "detail": rejected.detail,
    }


def shard_of(source_id: str, count: int) -> int:
    """A stable shard index for `source_id` (independent of the split's hash bits)."""
    digest = hashlib.sha256(source_id.encode("utf-8")).digest()
    return int.from_bytes(digest[8:16], "big") % count


def shard_count(config: PreprocessConfig, examples: int) -> int:
    """`num_shards`, or enough shards that none exceeds `target_shard_mb` (uncompressed bound)."""
    if config.num_shards > 0:
        return config.num_shards
    channels = 1 if config.grayscale else 3
    bytes_per_example = config.image_height * config.image_width * (channels + 1)
    return max(1, math.ceil(examples * bytes_per_example / (config.target_shard_mb * 2**20)))


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
    """Beam options with the runner named explicitly; extra Beam flags pass through untouched."""
    options: dict[str, object] = {"runner": config.runner}
    if config.runner == "DirectRunner":
        options["direct_running_mode"] = config.direct_running_mode
        if config.direct_running_mode != "in_memory":
            options["direct_num_workers"] = 0  # one worker per core
    flags = [*shlex.split(config.beam_options), *beam_args]
    return PipelineOptions(flags=flags, **options)


def build(
    root: beam.Pipeline,
    pairs: list[SourcePair],
    output_dir: str,
    config: PreprocessConfig,
    class_names: tuple[str, ...],
) -> None:
    """Wire the transforms onto `root`."""
    results = (
        root
        | "PlanShards" >> beam.Create(plan_shards(pairs, config), reshuffle=True)
        | "WriteShards"
        >> beam.ParDo(WriteShard(output_dir, config)).with_outputs(
            REJECTED, MASK_VALUES, main="written"
        )
    )
    written, rejected = results.written, results[REJECTED]
    mask_values = results[MASK_VALUES] | "MaskValues" >> beam.CombineGlobally(MaskValuesFn())

    split_stats = (
        written
        | "SplitStats" >> beam.CombinePerKey(SplitStatsFn(config.num_classes))
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
        | "AssembleStats"
        >> beam.Map(
            lambda per_split, reasons, values: json.dumps(
                assemble_stats(per_split, reasons, class_names, IGNORE_LABEL, values), indent=2
            ),
            beam.pvalue.AsSingleton(reason_counts),
            beam.pvalue.AsSingleton(mask_values),
        )
        | "WriteStats"
        >> beam.io.WriteToText(
            storage.join(output_dir, "stats"), file_name_suffix=".json", shard_name_template=""
        )
    )
    # sorted by source id, so the file is the same on every runner (the arrival order is not);
    # rejects are a few per cent of the inputs at most (max_reject_fraction), one small list
    _ = (
        rejected
        | "RejectToJson" >> beam.Map(lambda r: (r["source_id"], json.dumps(r, sort_keys=True)))
        | "CollectRejects" >> beam.combiners.ToList()
        | "SortRejects" >> beam.FlatMap(lambda keyed: [line for _, line in sorted(keyed)])
        | "WriteRejects"
        >> beam.io.WriteToText(
            storage.join(output_dir, "rejects"), file_name_suffix=".jsonl", shard_name_template=""
        )
    )


def _write_reports(output_dir: str, stats: dict) -> str:
    """stats.parquet and stats.md beside stats.json; returns the Markdown."""
    from apache_beam.io.filesystems import FileSystems

    markdown = stats_markdown(stats)
    with FileSystems.create(storage.join(output_dir, "stats.parquet")) as handle:
        handle.write(stats_table(stats))
    with FileSystems.create(storage.join(output_dir, "stats.md")) as handle:
        handle.write(markdown.encode("utf-8"))
    return markdown


def run_preprocess(
    data_dir: str, output_dir: str, config: PreprocessConfig, beam_args: Sequence[str] = ()
) -> PreprocessResult:
    """Run the Beam job over `data_dir` in `config.layout`; returns the stats it wrote.

    After writing every output, raises UnusableSplits when the train or val split is empty,
    UnusableLabels when the masks as read lose a class
    (0/255 masks read as class indices, a class with no train pixels) and TooManyRejects
    when rejects exceed the allowed fraction.
    """
    class_names = class_names_for(config.num_classes, config.class_names)
    pairs, ignored = list_inputs(data_dir, config)
    log.info(
        "preprocess: %d inputs from %s -> %s (%d other files ignored: %s)",
        len(pairs),
        data_dir,
        output_dir,
        len(ignored),
        storage.join(output_dir, IGNORED_FILE),
    )
    options = pipeline_options(config, beam_args)
    with beam.Pipeline(runner=_runner(config), options=options) as root:
        build(root, pairs, output_dir, config, class_names)
    write_ignored(storage.join(output_dir, IGNORED_FILE), ignored)
    stats = storage.read_json(storage.join(output_dir, "stats.json"))
    if stats["inputs"] != len(pairs):
        raise RuntimeError(f"{len(pairs)} inputs but {stats['inputs']} written or rejected")
    info = DatasetInfo(
        num_classes=config.num_classes,
        class_names=class_names,
        image_height=config.image_height,
        image_width=config.image_width,
        ignore_label=IGNORE_LABEL,
        grayscale=config.grayscale,
    )
    write_dataset_info(output_dir, info)
    markdown = _write_reports(output_dir, stats)
    check_encoding(stats, config)
    rejected_fraction = stats["rejected"] / max(1, stats["inputs"])
    if rejected_fraction > config.max_reject_fraction:
        raise TooManyRejects(
            f"{stats['rejected']} of {stats['inputs']} inputs rejected "
            f"({rejected_fraction:.1%} > max_reject_fraction {config.max_reject_fraction:.1%}); "
            f"by reason: {stats['rejects_by_reason']}; "
            f"details in {storage.join(output_dir, 'rejects.jsonl')}"
        )
    check_splits(stats, config)
    check_classes(stats, config)
    return PreprocessResult(stats, markdown, len(ignored))
