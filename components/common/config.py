"""Frozen configuration dataclasses; standard library only so `pipelines` can import them."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

IGNORE_LABEL = 255  # class value stored in shards for "no label"; skipped by loss and metrics


@dataclass(frozen=True)
class PreprocessConfig:
    """How raw image + mask pairs become TFRecord shards."""

    image_height: int = 128
    image_width: int = 128
    num_classes: int = 4
    class_names: str = ""  # comma-separated, one per class; empty: class_0, class_1, ...
    val_fraction: float = 0.2
    num_shards: int = 4
    runner: str = "DirectRunner"
    direct_running_mode: str = "multi_processing"


@dataclass(frozen=True)
class TrainConfig:
    """Model and optimisation settings for the train step."""

    epochs: int = 20
    batch_size: int = 16
    learning_rate: float = 2e-3
    unet_width: int = 16
    unet_depth: int = 3
    seed: int = 42


@dataclass(frozen=True)
class GatePolicy:
    """When a candidate model may replace the champion."""

    min_mean_iou: float = 0.5
    eval_split: str = "val"


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
