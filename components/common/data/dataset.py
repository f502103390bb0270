"""The data set's metadata file, written by preprocess and read by every later step."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from components.common import storage

METADATA_FILE = "dataset.json"


@dataclass(frozen=True)
class DatasetInfo:
    """What a model needs to know about the shards it reads."""

    num_classes: int
    class_names: tuple[str, ...]
    image_height: int
    image_width: int
    ignore_label: int
    grayscale: bool = False  # images stored as one grey channel (the model sees it as RGB)

    def shard_pattern(self, dataset_dir: str, split: str) -> str:
        return storage.join(dataset_dir, split, f"{split}-*.tfrecord")


def class_names_for(num_classes: int, names: str) -> tuple[str, ...]:
    """Parse comma-separated class names, or number them when none are given."""
    parsed = tuple(n.strip() for n in names.split(",") if n.strip())
    if not parsed:
        return tuple(f"class_{i}" for i in range(num_classes))
    if len(parsed) != num_classes:
        raise ValueError(f"{len(parsed)} class names given for {num_classes} classes: {names!r}")
    return parsed


def write_dataset_info(dataset_dir: str, info: DatasetInfo) -> None:
    storage.write_json(storage.join(dataset_dir, METADATA_FILE), asdict(info))


def read_dataset_info(dataset_dir: str) -> DatasetInfo:
    raw = storage.read_json(storage.join(dataset_dir, METADATA_FILE))
    return DatasetInfo(**{**raw, "class_names": tuple(raw["class_names"])})
