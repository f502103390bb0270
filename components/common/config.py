"""Frozen configuration dataclasses; standard library only so `pipelines` can import them."""

from __future__ import annotations

import dataclasses
import math
import re
import string
from dataclasses import dataclass, field

IGNORE_LABEL = 255  # class value stored in shards for "no label"; skipped by loss and metrics
ANY_CLASS = "*"  # allow_absent_classes: every class may be absent
# Masks are stored as 8-bit PNG with 255 = ignore: class ids 0..254.
MAX_CLASSES = IGNORE_LABEL
# Larger images are refused before decoding. 100 MP passes 10000x10000 tiles (8000x8000
# satellite tiles included) and refuses 13000x13000; one preprocess worker encoding a
# 10000x10000 pair peaks at about 0.6 GB.
DEFAULT_MAX_PIXELS = 100_000_000
MASK_ENCODINGS = ("index", "binary", "palette")
RESIZE_MODES = ("stretch", "pad")

ARCHITECTURES = ("unet", "deeplabv3plus")
BACKBONES = ("mobilenetv2", "resnet50")
OPTIMIZERS = ("adam", "sgd", "rmsprop")
LR_SCHEDULES = ("cosine", "polynomial", "constant")
PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")


@dataclass(frozen=True)
class PreprocessConfig:
    """How raw image + mask pairs become TFRecord shards."""

    layout: str = "paired-folders"  # paired-folders | paired-globs | list-files | voc
    image_glob: str = "images/*"  # paired-globs: images, relative to the data folder
    image_regex: str = ""  # paired-globs: named groups from each image's stem, e.g. img_(?P<id>.+)
    mask_pattern: str = "masks/{stem}.png"  # paired-globs: each image's mask; {stem}, regex groups
    list_files: str = ""  # list-files: "train.txt,val.txt" or "train=a.txt,val=b.txt"
    strip_prefix: str = ""  # list-files: prefix removed from listed paths
    mask_encoding: str = "index"  # index | binary | palette
    binary_threshold: int = 128  # binary: values >= threshold are class 1 (0/1 masks as is)
    palette: str = ""  # palette: "R,G,B=CLASS;R,G,B=CLASS"
    ignore_values: str = ""  # comma-separated mask values stored as the ignore label
    num_classes: int = 4
    class_names: str = ""  # comma-separated, one per class; empty: class_0, class_1, ...
    image_height: int = 128
    image_width: int = 128
    resize_mode: str = "stretch"  # stretch | pad (keep aspect ratio, masks padded with ignore)
    grayscale: bool = False
    val_fraction: float = 0.2  # hash split, used when the layout sets no split
    test_fraction: float = 0.0
    max_reject_fraction: float = 0.05  # fail the step when more inputs than this are rejected
    max_pixels: int = DEFAULT_MAX_PIXELS  # reject larger images before decoding (width x height)
    allow_empty_train_classes: bool = False  # true: classes with no train pixels pass
    num_shards: int = 4  # 0: derived from target_shard_mb
    target_shard_mb: int = 128
    runner: str = "DirectRunner"
    direct_running_mode: str = "multi_processing"
    beam_options: str = (
        ""  # extra Beam flags, e.g. "--project p --region r --temp_location gs://b/t"
    )

    def __post_init__(self) -> None:
        """Refuse settings that would lose labels or train from nothing, before any work."""
        if not 2 <= self.num_classes <= MAX_CLASSES:
            raise ValueError(
                f"num_classes={self.num_classes} is outside 2..{MAX_CLASSES}: masks are stored "
                f"as 8-bit PNG with {IGNORE_LABEL} as the ignore label, so class ids are "
                f"0..{MAX_CLASSES - 1}"
            )
        for name in ("val_fraction", "test_fraction"):
            value = getattr(self, name)
            if not 0 <= value < 1:
                raise ValueError(f"{name}={value} is outside the allowed range [0, 1)")
        if self.val_fraction + self.test_fraction >= 1:
            raise ValueError(
                f"val_fraction={self.val_fraction} + test_fraction={self.test_fraction} "
                "is 1 or more: the train split would be empty; their sum must be below 1"
            )
        if not 0 <= self.max_reject_fraction <= 1:
            raise ValueError(f"max_reject_fraction={self.max_reject_fraction} is outside [0, 1]")
        if self.max_pixels < 1:
            raise ValueError(f"max_pixels={self.max_pixels} must be 1 or more")
        if self.mask_encoding not in MASK_ENCODINGS:
            raise ValueError(
                f"mask_encoding={self.mask_encoding!r}; use one of {', '.join(MASK_ENCODINGS)}"
            )
        if self.resize_mode not in RESIZE_MODES:
            raise ValueError(
                f"resize_mode={self.resize_mode!r}; use one of {', '.join(RESIZE_MODES)}"
            )
        classes = [v for v in self.ignore_value_list() if 0 <= v < self.num_classes]
        if classes or any(v < 0 for v in self.ignore_value_list()):
            raise ValueError(
                f"ignore_values={self.ignore_values!r}: ignored mask values must be "
                f"non-negative and not class ids (0..{self.num_classes - 1}), or that class "
                "would have no pixels"
            )
        self.mask_fields()
        if self.mask_encoding == "palette":
            self._check_palette()

    def _check_palette(self) -> None:
        ignored = set(self.ignore_value_list())
        for colour, index in self.palette_table().items():
            if index >= self.num_classes and index != IGNORE_LABEL and index not in ignored:
                raise ValueError(
                    f"palette maps {colour} to {index}, not a class id (0..{self.num_classes - 1})"
                    f" nor the ignore label {IGNORE_LABEL} nor one of ignore_values"
                )

    def palette_table(self) -> dict[tuple[int, int, int], int]:
        """`palette` parsed: `"0,0,0=0;128,0,0=1"` -> {(0, 0, 0): 0, (128, 0, 0): 1}."""
        table = {}
        for entry in filter(None, (item.strip() for item in self.palette.split(";"))):
            colour, sep, index = entry.partition("=")
            try:
                rgb = tuple(int(c) for c in colour.split(","))
                class_id = int(index)
            except ValueError:
                rgb, class_id = (), -1
            if not sep or len(rgb) != 3 or not all(0 <= c <= 255 for c in (*rgb, class_id)):
                raise ValueError(f"palette entry {entry!r} is not 'R,G,B=CLASS' with values 0..255")
            table[rgb] = class_id
        if not table:
            raise ValueError("mask_encoding 'palette' needs palette='R,G,B=CLASS;...'")
        return table

    def ignore_value_list(self) -> list[int]:
        try:
            return [int(v) for v in self.ignore_values.split(",") if v.strip()]
        except ValueError as error:
            raise ValueError(
                f"ignore_values={self.ignore_values!r} is not a comma-separated list of integers"
            ) from error

    def image_name_regex(self) -> re.Pattern | None:
        """`image_regex` compiled, or None when unset."""
        if not self.image_regex:
            return None
        try:
            return re.compile(self.image_regex)
        except re.error as error:
            raise ValueError(f"image_regex={self.image_regex!r} is not a regex: {error}") from None

    def mask_fields(self) -> set[str]:
        """The `{names}` in `mask_pattern`; each must be `stem` or a group of `image_regex`."""
        try:
            fields = {name for _, name, _, _ in string.Formatter().parse(self.mask_pattern)}
        except ValueError as error:
            raise ValueError(f"mask_pattern={self.mask_pattern!r}: {error}") from None
        fields.discard(None)
        regex = self.image_name_regex()
        groups = set(regex.groupindex) if regex else set()
        if "stem" in groups:
            raise ValueError("image_regex: the group name 'stem' is taken (the image's stem)")
        unknown = fields - groups - {"stem"}
        if self.layout == "paired-globs" and not fields:
            raise ValueError(
                f"mask_pattern={self.mask_pattern!r} names one file for every image; "
                "use {stem} or image_regex's named groups, e.g. masks/{stem}_mask.png"
            )
        if self.layout == "paired-globs" and unknown:
            known = ", ".join(["stem", *sorted(groups)])
            raise ValueError(
                f"mask_pattern={self.mask_pattern!r} uses {', '.join(sorted(unknown))}, "
                f"which image_regex does not define; known: {known}"
            )
        return fields


@dataclass(frozen=True)
class TrainConfig:
    """Model and optimisation settings for the train step."""

    epochs: int = 20
    batch_size: int = 16
    learning_rate: float = 2e-3
    unet_width: int = 16
    unet_depth: int = 3
    input_height: int = 0  # model input size; 0: the data set's size. Shards are resized to it,
    input_width: int = 0  # and evaluation still scores at the shards' (label) resolution
    seed: int = 42
    architecture: str = "unet"  # unet | deeplabv3plus ("model" is the output artifact)
    backbone: str = "mobilenetv2"  # deeplabv3plus: mobilenetv2 | resnet50
    backbone_weights: str = ""  # deeplabv3plus: "" (random) | imagenet | a local weights file
    optimizer: str = "adam"  # adam | sgd (with momentum) | rmsprop
    lr_schedule: str = "cosine"  # cosine | polynomial | constant
    momentum: float = 0.9  # sgd and rmsprop
    warmup_epochs: int = 0  # linear learning-rate warm-up before the schedule
    class_weights: bool = False  # weight pixels by stats.json's median-frequency class weights
    class_weight_power: float = 1.0  # those weights to this power: 1 as they are, 0.5 damped
    dice_weight: float = 0.0  # > 0: add this times the soft Dice loss to cross-entropy
    train_cache: str = "memory"  # decoded train examples: memory | none | a local file prefix
    flip: bool = True  # random left-right flips of image and mask together
    scale_min: float = 1.0  # random scale range then crop back (1.0, 1.0: no scaling)
    scale_max: float = 1.0
    color_jitter: float = 0.0  # max brightness/contrast/saturation change (0: none)
    early_stopping_patience: int = 0  # epochs without a better val mean IoU; 0: never stop
    checkpoint_root: str = ""  # durable folder (local or gs://); a run resumes from <root>/<run id>
    checkpoint_every_steps: int = 0  # also checkpoint every N steps (0: at epoch ends only)
    warm_start: bool = False  # start from the registered champion's weights where shapes match
    precision: str = "auto"  # auto | float32 | mixed_float16 | mixed_bfloat16
    jit_compile: bool = False  # XLA
    system_metrics: bool = True  # CPU/GPU/memory into the MLflow run (needs psutil)
    tracking_outage_s: int = 300  # seconds training goes on while MLflow is down, then fails

    def __post_init__(self) -> None:
        _check_at_least(self, "epochs", 1)
        _check_at_least(self, "batch_size", 1)
        _check_positive(self, "learning_rate")
        _check_at_least(self, "unet_width", 1)
        _check_at_least(self, "unet_depth", 1)
        _check_at_least(self, "input_height", 0)
        _check_at_least(self, "input_width", 0)
        if not 0 <= self.seed < 2**32:  # numpy's seed range
            raise ValueError(f"seed must be in [0, 2**32), got {self.seed}")
        _check_one_of(self, "architecture", ARCHITECTURES)
        _check_one_of(self, "backbone", BACKBONES)
        _check_one_of(self, "optimizer", OPTIMIZERS)
        _check_one_of(self, "lr_schedule", LR_SCHEDULES)
        _check_one_of(self, "precision", PRECISIONS)
        if not 0 <= self.momentum <= 1:
            raise ValueError(f"momentum must be in [0, 1], got {self.momentum}")
        if self.warmup_epochs and not 0 <= self.warmup_epochs < self.epochs:
            raise ValueError(
                f"warmup_epochs must be in [0, epochs={self.epochs}), got {self.warmup_epochs}"
            )
        _check_at_least(self, "class_weight_power", 0)
        _check_at_least(self, "dice_weight", 0)
        if not self.train_cache:
            raise ValueError('train_cache must be "memory", "none" or a file prefix, got ""')
        if not 0 < self.scale_min <= self.scale_max:
            raise ValueError(
                f"need 0 < scale_min <= scale_max, got {self.scale_min}, {self.scale_max}"
            )
        if not 0 <= self.color_jitter < 1:
            raise ValueError(f"color_jitter must be in [0, 1), got {self.color_jitter}")
        _check_at_least(self, "early_stopping_patience", 0)
        _check_at_least(self, "checkpoint_every_steps", 0)
        _check_at_least(self, "tracking_outage_s", 0)


@dataclass(frozen=True)
class GatePolicy:
    """When a candidate model may replace the champion."""

    min_mean_iou: float = 0.5
    eval_split: str = "val"
    max_drop: float = 0.0  # largest mean IoU drop vs the champion that may still pass
    max_class_drop: float = -1.0  # largest per-class IoU drop vs the champion; < 0: no guard
    allow_absent_classes: str = ""  # classes that may have no truth pixels: "a,b", or "*" for any
    max_class_shift: float = -1.0  # most any class's pixel share may move from the champion's data

    def __post_init__(self) -> None:
        if not (self.max_class_shift < 0 or 0 <= self.max_class_shift <= 1):  # NaN fails too
            raise ValueError(
                f"max_class_shift must be a share in [0, 1] (or < 0: no check), "
                f"got {self.max_class_shift}"
            )

    def absent_classes_allowed(self) -> tuple[str, ...]:
        """The class names listed in `allow_absent_classes` (ANY_CLASS alone means every class)."""
        return tuple(n.strip() for n in self.allow_absent_classes.split(",") if n.strip())


@dataclass(frozen=True)
class SnapshotConfig:
    """What the data snapshot records, and when a run may end after it."""

    skip_unchanged: bool = False  # end the run when data and training settings equal the champion's
    hash_local_files: bool = False  # local inputs: identify by the sha256 of the bytes, not mtime


@dataclass(frozen=True)
class PublishConfig:
    """Where a passed model goes."""

    model_name: str = "segpipe-unet"
    export_root: str = "exports"
    alias: str = "champion"


@dataclass(frozen=True)
class ClusterConfig:
    """Kubernetes settings that take effect only on a cluster (kfp.local ignores them)."""

    mlflow_secret: str = "segpipe-mlflow"  # Secret with tracking_uri (+ optional credentials)
    train_cpu: str = "4"
    train_memory: str = "16Gi"
    train_accelerator: str = "nvidia.com/gpu"  # the node resource name of the GPU
    train_gpus: int = 1
    train_workers: int = 1  # > 1: a Kubeflow Trainer TrainJob of this many worker pods
    # (each with the train_* resources) instead of the one train pod

    def __post_init__(self) -> None:
        _check_at_least(self, "train_workers", 1)


@dataclass(frozen=True)
class PipelineConfig:
    """Every pipeline parameter's default, gathered in one place."""

    snapshot: SnapshotConfig = field(default_factory=SnapshotConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    gate: GatePolicy = field(default_factory=GatePolicy)
    publish: PublishConfig = field(default_factory=PublishConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    experiment: str = "segpipe"

    def parameters(self) -> dict[str, object]:
        """Flat pipeline parameters (name -> default) from the nested configs."""
        flat: dict[str, object] = {"experiment": self.experiment}
        sections = (self.snapshot, self.preprocess, self.train, self.gate, self.publish)
        for section in (*sections, self.cluster):
            flat.update(dataclasses.asdict(section))
        return flat

    def with_parameters(self, params: dict[str, object]) -> PipelineConfig:
        """This config with flat pipeline parameters overlaid; each section checks its values."""
        sections = {}
        for field_ in dataclasses.fields(self):
            section = getattr(self, field_.name)
            if dataclasses.is_dataclass(section):
                names = {f.name for f in dataclasses.fields(section)}
                changes = {k: v for k, v in params.items() if k in names}
                sections[field_.name] = dataclasses.replace(section, **changes)
        experiment = str(params.get("experiment", self.experiment))
        return dataclasses.replace(self, experiment=experiment, **sections)


def _check_at_least(config: object, name: str, minimum: float) -> None:
    value = getattr(config, name)
    if not value >= minimum:  # `not >=`: NaN fails too
        raise ValueError(f"{name} must be >= {minimum}, got {value}")


def _check_positive(config: object, name: str) -> None:
    value = getattr(config, name)
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{name} must be a finite number > 0, got {value}")


def _check_one_of(config: object, name: str, allowed: tuple[str, ...]) -> None:
    value = getattr(config, name)
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
