"""Data set statistics: per-split counts, class pixels, median-frequency weights, size histogram."""

from __future__ import annotations

import io
from collections import Counter

import apache_beam as beam
import numpy as np

from components.preprocess.split import SPLITS


class SplitStatsFn(beam.CombineFn):
    """Per split: examples, pixels per class, pixels of images containing each class, sizes."""

    def __init__(self, num_classes: int):
        self._num_classes = num_classes

    def create_accumulator(self):
        zeros = np.zeros(self._num_classes, dtype=np.int64)
        return {
            "examples": 0,
            "class_pixels": zeros,
            "present_pixels": zeros.copy(),
            "sizes": Counter(),
        }

    def add_input(self, acc, example):
        pixels = example.class_pixels
        acc["examples"] += 1
        acc["class_pixels"] = acc["class_pixels"] + pixels
        acc["present_pixels"] = acc["present_pixels"] + (pixels > 0) * pixels.sum()
        acc["sizes"][example.original_size] += 1
        return acc

    def merge_accumulators(self, accumulators):
        merged = self.create_accumulator()
        for acc in accumulators:
            merged["examples"] += acc["examples"]
            merged["class_pixels"] = merged["class_pixels"] + acc["class_pixels"]
            merged["present_pixels"] = merged["present_pixels"] + acc["present_pixels"]
            merged["sizes"].update(acc["sizes"])
        return merged

    def extract_output(self, acc):
        return {
            "examples": acc["examples"],
            "class_pixels": [int(v) for v in acc["class_pixels"]],
            "present_pixels": [int(v) for v in acc["present_pixels"]],
            "image_sizes": dict(sorted(acc["sizes"].items())),
        }


class MaskValuesFn(beam.CombineFn):
    """Pixels per raw mask value over every mask read: the evidence for encoding checks."""

    def create_accumulator(self):
        return Counter()

    def add_input(self, acc, values):
        acc.update(values)
        return acc

    def merge_accumulators(self, accumulators):
        merged = Counter()
        for acc in accumulators:
            merged.update(acc)
        return merged

    def extract_output(self, acc):
        return {str(value): int(pixels) for value, pixels in sorted(acc.items())}


def median_frequency_weights(class_pixels, present_pixels) -> list[float]:
    """SegNet's class weights: median(freq) / freq(c).

    freq(c) = pixels of class c / pixels of the images that contain c; a class with no
    pixels gets weight 0.
    """
    pixels = np.asarray(class_pixels, dtype=np.float64)
    present = np.asarray(present_pixels, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        frequency = np.where(present > 0, pixels / present, 0.0)
    seen = frequency > 0
    if not seen.any():
        return [0.0] * len(pixels)
    median = np.median(frequency[seen])
    return [float(median / f) if f > 0 else 0.0 for f in frequency]


def assemble_stats(
    per_split: list[tuple[str, dict]],
    reject_reasons: list[tuple[str, int]],
    class_names: tuple[str, ...],
    ignore_label: int,
    mask_values: dict[str, int] | None = None,
) -> dict:
    """The stats document written as stats.json.

    `mask_values`: pixels per raw one-channel mask value (before ignore values and
    binarisation) over every mask read, written or rejected; empty for palette masks.
    """
    empty = SplitStatsFn(len(class_names))
    splits = {name: empty.extract_output(empty.create_accumulator()) for name in SPLITS}
    splits.update(dict(per_split))
    rejects = dict(sorted(reject_reasons))
    written = sum(s["examples"] for s in splits.values())
    train = splits["train"]
    return {
        "splits": splits,
        "class_names": list(class_names),
        "class_weights": median_frequency_weights(train["class_pixels"], train["present_pixels"]),
        "examples_written": written,
        "rejected": sum(rejects.values()),
        "rejects_by_reason": rejects,
        "inputs": written + sum(rejects.values()),
        "num_classes": len(class_names),
        "ignore_label": ignore_label,
        "mask_values": dict(mask_values or {}),
    }


def stats_table(stats: dict) -> bytes:
    """One Parquet row per (split, class): pixels, share of the split's pixels, train weight."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows: dict[str, list] = {
        k: []
        for k in (
            "split",
            "class_id",
            "class_name",
            "pixels",
            "share",
            "examples",
            "median_frequency_weight",
        )
    }
    for split, split_stats in stats["splits"].items():
        total = sum(split_stats["class_pixels"]) or 1
        for class_id, name in enumerate(stats["class_names"]):
            rows["split"].append(split)
            rows["class_id"].append(class_id)
            rows["class_name"].append(name)
            rows["pixels"].append(split_stats["class_pixels"][class_id])
            rows["share"].append(split_stats["class_pixels"][class_id] / total)
            rows["examples"].append(split_stats["examples"])
            rows["median_frequency_weight"].append(stats["class_weights"][class_id])
    buffer = io.BytesIO()
    pq.write_table(pa.table(rows), buffer)
    return buffer.getvalue()


def stats_markdown(stats: dict) -> str:
    """A short Markdown report for the KFP UI and MLflow."""
    lines = [
        "# Data set statistics",
        "",
        f"Inputs: **{stats['inputs']}**, written: **{stats['examples_written']}**, "
        f"rejected: **{stats['rejected']}**",
        "",
        "| split | examples |",
        "|---|---:|",
        *(f"| {name} | {s['examples']} |" for name, s in stats["splits"].items()),
        "",
        "| class | " + " | ".join(f"{split} pixels" for split in stats["splits"]) + " | weight |",
        "|---|" + "---:|" * (len(stats["splits"]) + 1),
    ]
    for class_id, name in enumerate(stats["class_names"]):
        pixels = " | ".join(str(s["class_pixels"][class_id]) for s in stats["splits"].values())
        lines.append(f"| {name} | {pixels} | {stats['class_weights'][class_id]:.3f} |")
    if stats["rejects_by_reason"]:
        lines += ["", "| reject reason | count |", "|---|---:|"]
        lines += [f"| {reason} | {count} |" for reason, count in stats["rejects_by_reason"].items()]
    sizes = Counter()
    for split_stats in stats["splits"].values():
        sizes.update(split_stats["image_sizes"])
    lines += ["", "| source size | images |", "|---|---:|"]
    lines += [f"| {size} | {count} |" for size, count in sizes.most_common(10)]
    return "\n".join(lines) + "\n"
