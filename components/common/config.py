"""Frozen configuration dataclasses; standard library only so `pipelines` can import them."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

IGNORE_LABEL = 255  # class value stored in shards for "no label"; skipped by loss and metrics
ANY_CLASS = "*"  # allow_absent_classes: every class may be absent


@dataclass(frozen=True)
class PreprocessConfig:
    """How raw image + mask pairs become TFRecord shards."""

    layout: str = "paired-folders"  # paired-folders | paired-globs | list-files | voc
    image_glob: str = "images/*"  # paired-globs: images, relative to the data folder
    mask_pattern: str = "masks/{stem}.png"  # paired-globs: each image's mask
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
    num_shards: int = 4  # 0: derived from target_shard_mb
    target_shard_mb: int = 128
    runner: str = "DirectRunner"
    direct_running_mode: str = "multi_processing"
    beam_options: str = (
        ""  # extra Beam flags, e.g. "--project p --region r --temp_location gs://b/t"
    )

    def ignore_value_list(self) -> list[int]:
        return [int(v) for v in self.ignore_values.split(",") if v.strip()]


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


@dataclass(frozen=True)
class GatePolicy:
    """When a candidate model may replace the champion."""

    min_mean_iou: float = 0.5
    eval_split: str = "val"
    max_drop: float = 0.0  # largest mean IoU drop vs the champion that may still pass
    max_class_drop: float = -1.0  # largest per-class IoU drop vs the champion; < 0: no guard
    allow_absent_classes: str = ""  # classes that may have no truth pixels: "a,b", or "*" for any

    def absent_classes_allowed(self) -> tuple[str, ...]:
        """The class names listed in `allow_absent_classes` (ANY_CLASS alone means every class)."""
        return tuple(n.strip() for n in self.allow_absent_classes.split(",") if n.strip())


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


@dataclass(frozen=True)
class PipelineConfig:
    """Every pipeline parameter's default, gathered in one place."""

    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    gate: GatePolicy = field(default_factory=GatePolicy)
    publish: PublishConfig = field(default_factory=PublishConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    experiment: str = "segpipe"

    def parameters(self) -> dict[str, object]:
        """Flat pipeline parameters (name -> default) from the nested configs."""
        flat: dict[str, object] = {"experiment": self.experiment}
        for section in (self.preprocess, self.train, self.gate, self.publish, self.cluster):
            flat.update(dataclasses.asdict(section))
        return flat
