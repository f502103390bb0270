"""Frozen configuration dataclasses; standard library only so `pipelines` can import them.

Each setting is declared once, with `setting(default, help, ...)`: its type, default, one-line
help and its checks (allowed values, range). The pipeline's inputs, the step CLI flags,
`segpipe params` and the KFP input descriptions are derived from these declarations.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
import shlex
import string
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

IGNORE_LABEL = 255  # class value stored in shards for "no label"; skipped by loss and metrics
ANY_CLASS = "*"  # allow_absent_classes: every class may be absent
# Masks are stored as 8-bit PNG with 255 = ignore: class ids 0..254.
MAX_CLASSES = IGNORE_LABEL
# Larger images are refused before decoding. 100 MP passes 10000x10000 tiles (8000x8000
# satellite tiles included) and refuses 13000x13000; one preprocess worker encoding a
# 10000x10000 pair peaks at about 0.6 GB.
DEFAULT_MAX_PIXELS = 100_000_000
LAYOUTS = ("paired-folders", "paired-globs", "list-files", "voc")
MASK_ENCODINGS = ("index", "binary", "palette")
RESIZE_MODES = ("stretch", "pad")
DIRECT_RUNNING_MODES = ("in_memory", "multi_threading", "multi_processing")
SPLITS = ("train", "val", "test")

ARCHITECTURES = ("unet", "deeplabv3plus")
BACKBONES = ("mobilenetv2", "resnet50")
OPTIMIZERS = ("adam", "sgd", "rmsprop")
DEFAULT_EXPERIMENT = "segpipe"  # the MLflow experiment, unless a run names another
DEFAULT_MODEL_NAME = "segpipe-unet"
DEFAULT_ALIAS = "champion"  # the registry alias of the model in production
LR_SCHEDULES = ("cosine", "polynomial", "constant")
PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
DEEPLAB_STRIDE = 16  # DeepLabV3+'s output stride: its input sides must be multiples of it

PREVIOUS_ALIAS = "previous"  # publish moves it to the version the new champion replaces
# MLflow's rules for alias names (mlflow.utils.validation): word characters and dashes, not
# "latest", not a version reference like "v3"
_ALIAS = re.compile(r"[\w\-]{1,255}")
_VERSION_ALIAS = re.compile(r"[vV]\d+")
# Kubernetes: a Secret name is a DNS-1123 subdomain; CPU and memory are resource quantities
# written the way kfp accepts them (pipeline_task.set_cpu_request / set_memory_request)
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_CPU = re.compile(r"([0-9]*[.])?[0-9]+m?")
_MEMORY = re.compile(r"[0-9]+(E|Ei|P|Pi|T|Ti|G|Gi|M|Mi|K|Ki)?")
_RESOURCE_NAME = re.compile(r"([a-z0-9.-]+/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")


def setting(
    default: Any,
    help: str,
    *,
    choices: tuple[str, ...] = (),
    at_least: float | None = None,
    above: float | None = None,
    at_most: float | None = None,
    below: float | None = None,
    why: str = "",
) -> Any:
    """A config field: its default, one-line help, allowed values and range (bounds inclusive
    for `at_least`/`at_most`, exclusive for `above`/`below`), and `why` a value outside them
    cannot work, for the error; `check_settings` enforces them."""
    metadata = {"help": help, "choices": choices, "why": why}
    metadata.update(at_least=at_least, above=above, at_most=at_most, below=below)
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class PreprocessConfig:
    """How raw image + mask pairs become TFRecord shards."""

    layout: str = setting("paired-folders", "how the data folder is laid out", choices=LAYOUTS)
    image_glob: str = setting("images/*", "paired-globs: the images, relative to the data folder")
    image_regex: str = setting(
        "", "paired-globs: named groups from each image's stem, e.g. img_(?P<id>.+)"
    )
    mask_pattern: str = setting(
        "masks/{stem}.png", "paired-globs: each image's mask, from {stem} and image_regex's groups"
    )
    list_files: str = setting(
        "", 'list-files: "train.txt,val.txt" or "train=a.txt,val=b.txt" (image mask per line)'
    )
    strip_prefix: str = setting("", "list-files: prefix removed from the listed paths")
    mask_encoding: str = setting(
        "index",
        "how mask pixels hold classes: index, 0/1 or 0/255 binary, RGB palette",
        choices=MASK_ENCODINGS,
    )
    binary_threshold: int = setting(
        128,
        "binary: mask values >= this are class 1 (0/1 masks read as they are)",
        at_least=1,
        at_most=255,
    )
    palette: str = setting("", 'palette: colour table "R,G,B=CLASS;R,G,B=CLASS"')
    ignore_values: str = setting(
        "", "comma-separated mask values stored as the ignore label 255 (not class ids)"
    )
    num_classes: int = setting(
        4,
        "number of classes",
        at_least=2,
        at_most=MAX_CLASSES,
        why=f"masks are stored as 8-bit PNG with {IGNORE_LABEL} as the ignore label",
    )
    class_names: str = setting("", "comma-separated, one per class; empty: class_0, class_1, ...")
    image_height: int = setting(128, "height of the stored images and masks", at_least=1)
    image_width: int = setting(128, "width of the stored images and masks", at_least=1)
    resize_mode: str = setting(
        "stretch",
        "stretch to size, or pad: keep the aspect ratio, pad masks with ignore",
        choices=RESIZE_MODES,
    )
    grayscale: bool = setting(False, "store images as one grey channel")
    val_fraction: float = setting(
        0.2, "share of inputs hashed to val (when the layout sets no split)", at_least=0, below=1
    )
    test_fraction: float = setting(
        0.0, "share of inputs hashed to test (when the layout sets no split)", at_least=0, below=1
    )
    max_reject_fraction: float = setting(
        0.05, "fail the step when a larger share of the inputs is rejected", at_least=0, at_most=1
    )
    max_pixels: int = setting(
        DEFAULT_MAX_PIXELS, "reject larger images (width x height) before decoding", at_least=1
    )
    allow_empty_train_classes: bool = setting(
        False, "let classes with no train pixels pass (else the step fails naming them)"
    )
    num_shards: int = setting(4, "shards per split; 0: sized by target_shard_mb", at_least=0)
    target_shard_mb: int = setting(128, "shard size when num_shards is 0", at_least=1)
    runner: str = setting("DirectRunner", "Beam runner, e.g. DataflowRunner, FlinkRunner")
    direct_running_mode: str = setting(
        "multi_processing", "DirectRunner: how it runs workers", choices=DIRECT_RUNNING_MODES
    )
    beam_options: str = setting(
        "", 'extra Beam flags, e.g. "--project p --region r --temp_location gs://b/t"'
    )

    def __post_init__(self) -> None:
        """Refuse settings that would lose labels or train from nothing, before any work."""
        check_settings(self)
        if self.val_fraction + self.test_fraction >= 1:
            raise ValueError(
                f"val_fraction={self.val_fraction} + test_fraction={self.test_fraction} "
                "is 1 or more: the train split would be empty; their sum must be below 1"
            )
        classes = [v for v in self.ignore_value_list() if 0 <= v < self.num_classes]
        if classes or any(v < 0 for v in self.ignore_value_list()):
            raise ValueError(
                f"ignore_values={self.ignore_values!r}: ignored mask values must be "
                f"non-negative and not class ids (0..{self.num_classes - 1}), or that class "
                "would have no pixels"
            )
        names = self.class_name_list()
        if names and len(names) != self.num_classes:
            raise ValueError(
                f"class_names lists {len(names)} names for num_classes={self.num_classes}: "
                f"{self.class_names!r}"
            )
        if self.layout == "list-files" and not self.list_files.strip():
            raise ValueError("layout=list-files needs list_files, e.g. train.txt,val.txt,test.txt")
        self.mask_fields()
        if self.mask_encoding == "palette":
            self._check_palette()
        try:
            shlex.split(self.beam_options)
        except ValueError as error:
            raise ValueError(f"beam_options={self.beam_options!r}: {error}") from None

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

    def class_name_list(self) -> tuple[str, ...]:
        """The names in `class_names` (empty when none are given)."""
        return tuple(name.strip() for name in self.class_names.split(",") if name.strip())

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

    epochs: int = setting(20, "passes over the train split", at_least=1)
    batch_size: int = setting(16, "examples per training step", at_least=1)
    learning_rate: float = setting(2e-3, "peak learning rate of the schedule", above=0)
    unet_width: int = setting(16, "unet: filters of the first level, doubled per level", at_least=1)
    unet_depth: int = setting(
        3, "unet: down-sampling levels (sides padded to a multiple of 2**depth)", at_least=1
    )
    input_height: int = setting(
        0,
        "model input height; 0: the shards' (resized to it; scored at theirs)",
        at_least=0,
    )
    input_width: int = setting(0, "model input width; 0: the shards'", at_least=0)
    seed: int = setting(
        42,
        "random seed of the initial weights, shuffling and augmentation",
        at_least=0,
        below=2**32,
    )
    deterministic: bool = setting(
        False,
        "op determinism and ordered input: two runs with one seed give identical metrics (slower)",
    )
    architecture: str = setting("unet", "model architecture", choices=ARCHITECTURES)
    backbone: str = setting("mobilenetv2", "deeplabv3plus: its encoder", choices=BACKBONES)
    backbone_weights: str = setting(
        "", 'deeplabv3plus: "" random, imagenet (download or ~/.keras), or a local weights file'
    )
    optimizer: str = setting("adam", "optimiser (sgd and rmsprop use momentum)", choices=OPTIMIZERS)
    lr_schedule: str = setting("cosine", "learning-rate decay after warm-up", choices=LR_SCHEDULES)
    momentum: float = setting(0.9, "sgd and rmsprop momentum", at_least=0, at_most=1)
    warmup_epochs: int = setting(
        0, "epochs of linear learning-rate warm-up, fewer than epochs", at_least=0
    )
    class_weights: bool = setting(
        False, "weight pixels by stats.json's median-frequency class weights"
    )
    class_weight_power: float = setting(
        1.0, "those weights to this power: 1 as they are, 0.5 damped", at_least=0
    )
    dice_weight: float = setting(
        0.0, "add this multiple of the soft Dice loss to cross-entropy", at_least=0
    )
    train_cache: str = setting(
        "memory", "decoded train examples: memory, none, or a local file prefix"
    )
    flip: bool = setting(True, "random left-right flips of image and mask together")
    scale_min: float = setting(
        1.0, "random scale range, then crop or pad back (1.0 to 1.0: off)", above=0
    )
    scale_max: float = setting(1.0, "upper end of the random scale range", above=0)
    color_jitter: float = setting(
        0.0, "largest brightness/contrast/saturation change (0: none)", at_least=0, below=1
    )
    crop_height: int = setting(
        0,
        "unet: train on random crops this high of the input-size images, scaled by scale_min.."
        "scale_max; the model is scored whole at the input size (0: train on whole images)",
        at_least=0,
    )
    crop_width: int = setting(0, "unet: width of those crops (set both or neither)", at_least=0)
    validate_every: int = setting(
        1,
        "validate every N epochs (Keras validation_freq); the last epoch if N divides epochs",
        at_least=1,
    )
    train_on_val: bool = setting(
        False,
        "refit: train on train + val together, without validation (fix epochs with a val run "
        "first; evaluate must then score test)",
    )
    early_stopping_patience: int = setting(
        0, "stop after this many epochs without a better val mean IoU; 0: never", at_least=0
    )
    checkpoint_root: str = setting(
        "", "durable folder (local or gs://) a retried task resumes from; empty: pipeline root"
    )
    checkpoint_every_steps: int = setting(
        0, "also checkpoint every N steps (0: at epoch ends only)", at_least=0
    )
    warm_start: bool = setting(
        False, "start from the champion's weights (model_name@alias) where shapes match"
    )
    precision: str = setting(
        "auto",
        "auto: float16 on GPU, bfloat16 on TPU and bf16 CPUs (AMX, AVX-512 BF16), else float32",
        choices=PRECISIONS,
    )
    jit_compile: bool = setting(False, "compile the model with XLA")
    flip_tta: bool = setting(
        False,
        "test-time augmentation in the export: average the logits of each image and its "
        "mirror (evaluate, predict and serving alike; twice the inference cost)",
    )
    tta_scales: str = setting(
        "1",
        "unet: test-time scales of the input size, e.g. 0.75,1,1.25: the logits at each, "
        "averaged (in the export; inference cost grows with each scale's square)",
    )
    system_metrics: bool = setting(True, "log CPU/GPU/memory use to the MLflow run (psutil)")
    tracking_outage_s: int = setting(
        300, "seconds training goes on while MLflow is unreachable, then fails", at_least=0
    )

    def __post_init__(self) -> None:
        check_settings(self)
        if self.warmup_epochs and not self.warmup_epochs < self.epochs:
            raise ValueError(
                f"warmup_epochs must be in [0, epochs={self.epochs}), got {self.warmup_epochs}"
            )
        if not self.train_cache:
            raise ValueError('train_cache must be "memory", "none" or a file prefix, got ""')
        if not self.scale_min <= self.scale_max:
            raise ValueError(
                f"need 0 < scale_min <= scale_max, got {self.scale_min}, {self.scale_max}"
            )
        if self.input_height or self.input_width:
            check_input_size(self, self.input_height, self.input_width)
        if bool(self.crop_height) != bool(self.crop_width):
            raise ValueError(
                f"set both crop_height and crop_width or neither, got "
                f"{self.crop_height}x{self.crop_width}"
            )
        if self.train_on_val and self.early_stopping_patience:
            raise ValueError(
                "train_on_val leaves nothing to validate on: early_stopping_patience must be 0"
            )
        if self.tta_scale_list() != (1.0,) and self.architecture != "unet":
            raise ValueError(
                f"tta_scales={self.tta_scales!r} needs architecture unet (deeplabv3plus takes "
                f"one input size), got {self.architecture}"
            )
        if self.crop_height and self.architecture != "unet":
            raise ValueError(
                f"crop_height/crop_width need architecture unet, got {self.architecture}"
            )

    def tta_scale_list(self) -> tuple[float, ...]:
        """The distinct scales in `tta_scales`, each in (0, 4]; a bad list is an error."""
        try:
            scales = tuple(float(v) for v in self.tta_scales.split(",") if v.strip())
        except ValueError:
            scales = ()
        if not scales or any(not 0 < s <= 4 for s in scales) or len(set(scales)) < len(scales):
            raise ValueError(
                f"tta_scales={self.tta_scales!r} is not a comma-separated list of distinct "
                "scales in (0, 4], e.g. 1 or 0.75,1,1.25"
            )
        return scales


def check_input_size(config: TrainConfig, height: int, width: int) -> None:
    """Refuse a model input size the architecture cannot take (a side of 0: not known yet)."""
    if config.architecture == "unet":
        return  # any size: the U-Net pads to a multiple of 2**depth and crops its logits back
    multiple, why = DEEPLAB_STRIDE, f"{DEEPLAB_STRIDE} for deeplabv3plus"
    if any(size % multiple for size in (height, width) if size):
        raise ValueError(
            f"model input {height}x{width} must have sides divisible by {why} "
            "(input_height/input_width, or image_height/image_width where those are 0)"
        )


@dataclass(frozen=True)
class GatePolicy:
    """When a candidate model may replace the champion."""

    min_mean_iou: float = setting(
        0.5, "the candidate's mean IoU must reach this", at_least=0, at_most=1
    )
    eval_split: str = setting("val", "the split evaluate scores the models on", choices=SPLITS)
    max_drop: float = setting(
        0.0,
        "largest mean IoU drop vs the champion that still passes (< 0: must gain)",
        at_least=-1,
        at_most=1,
    )
    max_class_drop: float = setting(
        -1.0,
        "largest per-class IoU drop vs the champion; < 0: no per-class guard",
        at_least=-1,
        at_most=1,
    )
    allow_absent_classes: str = setting(
        "", 'classes that may have no truth pixels in eval_split: "a,b", or "*" for any'
    )
    max_class_shift: float = setting(
        -1.0,
        "most any class's pixel share may move from the champion's training data; < 0: no check",
        at_least=-1,
        at_most=1,
    )

    def __post_init__(self) -> None:
        check_settings(self)

    def absent_classes_allowed(self) -> tuple[str, ...]:
        """The class names listed in `allow_absent_classes` (ANY_CLASS alone means every class)."""
        return tuple(n.strip() for n in self.allow_absent_classes.split(",") if n.strip())


@dataclass(frozen=True)
class SnapshotConfig:
    """What the data snapshot records, and when a run may end after it."""

    skip_unchanged: bool = setting(
        False, "end the run after the snapshot when data and training settings equal the champion's"
    )
    hash_local_files: bool = setting(
        False, "identify local inputs by the sha256 of their bytes, not size and mtime"
    )

    def __post_init__(self) -> None:
        check_settings(self)


@dataclass(frozen=True)
class RunContext:
    """Where one pipeline run's steps record, and the model they compare with and publish: the
    values that travel together through the steps, as one. The MLflow tracking URI is not
    among them: it comes from the environment (MLFLOW_TRACKING_URI), as credentials do."""

    experiment: str = DEFAULT_EXPERIMENT
    pipeline_run_id: str = ""  # the KFP run id: names the MLflow parent run; empty outside one
    model_name: str = DEFAULT_MODEL_NAME
    alias: str = DEFAULT_ALIAS


@dataclass(frozen=True)
class PublishConfig:
    """Where a passed model goes."""

    model_name: str = setting(
        DEFAULT_MODEL_NAME, "registered model; train warm-starts from and evaluate compares with it"
    )
    export_root: str = setting(
        "exports", "where versions are exported (local or gs://; on a cluster, a bucket)"
    )
    alias: str = setting(
        DEFAULT_ALIAS, "registry alias publish moves to a passed model; evaluate compares with it"
    )

    def __post_init__(self) -> None:
        check_settings(self)
        name = self.model_name
        if not name.strip() or "/" in name or ":" in name or name.startswith("."):
            raise ValueError(
                f"model_name={name!r} is not a registered model name: it must be non-empty "
                "and contain no '/' or ':'"
            )
        if not self.export_root.strip():
            raise ValueError("export_root is empty: name a folder or gs://BUCKET/prefix")
        alias = self.alias
        reserved = alias.lower() == "latest" or _VERSION_ALIAS.fullmatch(alias)
        if not _ALIAS.fullmatch(alias) or reserved:
            raise ValueError(
                f"alias={alias!r} is not an MLflow alias: letters, digits, _ and -, "
                "not 'latest', not a version like v3"
            )
        if alias == PREVIOUS_ALIAS:
            raise ValueError(
                f"alias={alias!r} is the alias publish gives the version a champion replaces; "
                "choose another"
            )


@dataclass(frozen=True)
class ClusterConfig:
    """Kubernetes settings that take effect only on a cluster (kfp.local ignores them)."""

    mlflow_secret: str = setting(
        "segpipe-mlflow", "Kubernetes Secret with tracking_uri (and optional credentials)"
    )
    train_cpu: str = setting("4", "CPU request of each train pod, e.g. 4 or 500m")
    train_memory: str = setting("16Gi", "memory request and limit of each train pod, e.g. 16Gi")
    train_accelerator: str = setting(
        "nvidia.com/gpu", "accelerator resource of each train pod, e.g. google.com/tpu"
    )
    train_gpus: int = setting(1, "accelerators (GPUs, TPU chips) per train pod", at_least=0)
    train_workers: int = setting(
        1,
        "> 1: train on a Kubeflow Trainer TrainJob of this many pods, each with the train_* "
        "resources",
        at_least=1,
    )

    def __post_init__(self) -> None:
        check_settings(self)
        for name, pattern, example in (
            ("mlflow_secret", _DNS_SUBDOMAIN, "lower-case letters, digits, '-' and '.'"),
            ("train_cpu", _CPU, "a number of cores such as 4 or 0.5, or millicores: 500m"),
            ("train_memory", _MEMORY, "bytes with an optional suffix: 16Gi, 512Mi, 8G"),
            ("train_accelerator", _RESOURCE_NAME, "a resource name such as nvidia.com/gpu"),
        ):
            value = getattr(self, name)
            if not pattern.fullmatch(value):
                raise ValueError(f"{name}={value!r} is not valid: expected {example}")


@dataclass(frozen=True)
class PipelineConfig:
    """Every pipeline parameter's default, gathered in one place."""

    snapshot: SnapshotConfig = field(default_factory=SnapshotConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    gate: GatePolicy = field(default_factory=GatePolicy)
    publish: PublishConfig = field(default_factory=PublishConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    experiment: str = setting(DEFAULT_EXPERIMENT, "MLflow experiment of the runs")

    def __post_init__(self) -> None:
        """Rules across steps: what one step's setting means for another's."""
        check_settings(self)
        if not self.experiment.strip():
            raise ValueError("experiment is empty: name the MLflow experiment")
        train, prep = self.train, self.preprocess
        check_input_size(
            train, train.input_height or prep.image_height, train.input_width or prep.image_width
        )
        if train.train_on_val and self.gate.eval_split == "val":
            raise ValueError(
                "train_on_val trains on the val split, so evaluate cannot score it: "
                "set eval_split=test"
            )
        hashed = prep.layout in ("paired-folders", "paired-globs")  # no split of their own
        if hashed and self.gate.eval_split == "test" and prep.test_fraction == 0:
            raise ValueError(
                f"eval_split=test, but layout={prep.layout} hashes no input to test "
                "(test_fraction=0): set test_fraction, or eval_split=val"
            )
        names = prep.class_name_list()
        allowed = self.gate.absent_classes_allowed()
        unknown = [n for n in allowed if n != ANY_CLASS and names and n not in names]
        if unknown:
            raise ValueError(
                f"allow_absent_classes names {', '.join(unknown)}, not in class_names "
                f"({', '.join(names)}); use class names, or {ANY_CLASS} for any class"
            )

    def sections(self) -> dict[str, object]:
        """The per-step configs by name."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if is_section(f)}

    def parameters(self) -> dict[str, object]:
        """Flat pipeline parameters (name -> default) from the nested configs."""
        flat: dict[str, object] = {"experiment": self.experiment}
        for section in self.sections().values():
            flat.update(dataclasses.asdict(section))
        return flat

    def with_parameters(self, params: Mapping[str, object]) -> PipelineConfig:
        """This config with flat pipeline parameters overlaid; each section checks its values,
        then the whole checks the rules across steps."""
        unknown = set(params) - set(self.parameters())
        if unknown:
            raise ValueError(f"unknown pipeline parameter(s): {', '.join(sorted(unknown))}")
        sections = {}
        for name, section in self.sections().items():
            names = {f.name for f in dataclasses.fields(section)}
            changes = {k: v for k, v in params.items() if k in names}
            sections[name] = dataclasses.replace(section, **changes)
        experiment = params.get("experiment", self.experiment)
        return dataclasses.replace(self, experiment=experiment, **sections)


def pipeline_settings() -> list[tuple[str, dataclasses.Field]]:
    """Every pipeline parameter's field with the name of its section ("pipeline" for its own)."""
    found = [("pipeline", f) for f in settings_of(PipelineConfig)]
    for section in dataclasses.fields(PipelineConfig):
        if is_section(section):
            found += [(section.name, f) for f in settings_of(section.default_factory)]
    return found


def pipeline_setting_types() -> dict[str, type]:
    """Each pipeline parameter's type."""
    types = dict(setting_types(PipelineConfig))
    for section in dataclasses.fields(PipelineConfig):
        if is_section(section):
            types.update(setting_types(section.default_factory))
    return types


def is_section(config_field: dataclasses.Field) -> bool:
    """Whether a PipelineConfig field is a step's config (not a setting of its own)."""
    return "help" not in config_field.metadata


def settings_of(config_type: type) -> list[dataclasses.Field]:
    """The settings (fields made by `setting`) of a config class, in declaration order."""
    return [f for f in dataclasses.fields(config_type) if not is_section(f)]


@functools.cache
def setting_types(config_type: type) -> dict[str, type]:
    """Each setting's type (str, int, float or bool), resolved from its annotation."""
    hints = typing.get_type_hints(config_type)
    return {f.name: hints[f.name] for f in settings_of(config_type)}


def help_of(config_field: dataclasses.Field) -> str:
    """A setting's one-line help with its allowed values or range, as users read it."""
    rule = allowed_values(config_field)
    return f"{config_field.metadata['help']} [{rule}]" if rule else config_field.metadata["help"]


def allowed_values(config_field: dataclasses.Field) -> str:
    """`one of a, b` or a range such as `in [0, 1)` / `>= 1`; empty when anything goes."""
    meta = config_field.metadata
    if meta["choices"]:
        return f"one of {', '.join(meta['choices'])}"
    low = (f"[{_number(meta['at_least'])}" if meta["at_least"] is not None else None) or (
        f"({_number(meta['above'])}" if meta["above"] is not None else None
    )
    high = (f"{_number(meta['at_most'])}]" if meta["at_most"] is not None else None) or (
        f"{_number(meta['below'])})" if meta["below"] is not None else None
    )
    if low and high:
        return f"in {low}, {high}"
    if low:
        return f"{'>=' if low[0] == '[' else '>'} {low[1:]}"
    if high:
        return f"{'<=' if high[-1] == ']' else '<'} {high[:-1]}"
    return ""


def _number(value: float) -> str:
    if value == 2**32:
        return "2**32"
    return str(int(value)) if float(value).is_integer() else str(value)


def check_settings(config: object) -> None:
    """Each setting's type, allowed values and range, as declared with `setting`.

    An int where a float is expected (as JSON may carry 1.0) becomes a float; a whole float
    where an int is expected becomes an int. Anything else of the wrong type is refused.
    """
    types = setting_types(type(config))
    for config_field in settings_of(type(config)):
        name = config_field.name
        value = _typed(name, getattr(config, name), types[name])
        object.__setattr__(config, name, value)  # frozen: the only write, in __post_init__
        meta = config_field.metadata
        if meta["choices"] and value not in meta["choices"]:
            raise ValueError(f"{name} must be one of {', '.join(meta['choices'])}; got {value!r}")
        if types[name] in (int, float) and not _in_range(value, meta):
            why = f": {meta['why']}" if meta["why"] else ""
            raise ValueError(f"{name} must be {allowed_values(config_field)}, got {value}{why}")


def _typed(name: str, value: Any, kind: type) -> Any:
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if type(value) is not kind:
        raise ValueError(f"{name} must be a {kind.__name__}, got {value!r}")
    return value


def _in_range(value: float, meta: Mapping[str, Any]) -> bool:
    if not math.isfinite(value):
        return False
    checks = (
        (meta["at_least"], lambda bound: value >= bound),
        (meta["above"], lambda bound: value > bound),
        (meta["at_most"], lambda bound: value <= bound),
        (meta["below"], lambda bound: value < bound),
    )
    return all(bound is None or holds(bound) for bound, holds in checks)


# The dataclasses a step function may take whole: its task gets one input per field.
TASK_INPUT_TYPES = (
    SnapshotConfig,
    PreprocessConfig,
    TrainConfig,
    GatePolicy,
    PublishConfig,
    ClusterConfig,
    RunContext,
)
