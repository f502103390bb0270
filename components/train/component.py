"""KFP wrapper of the train step."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Model, Output


def train(
    dataset: Input[Dataset],
    model: Output[Model],
    epochs: int,
    batch_size: int,
    learning_rate: float,
    unet_width: int,
    unet_depth: int,
    input_height: int,
    input_width: int,
    seed: int,
    architecture: str,
    backbone: str,
    backbone_weights: str,
    optimizer: str,
    lr_schedule: str,
    momentum: float,
    warmup_epochs: int,
    class_weights: bool,
    class_weight_power: float,
    dice_weight: float,
    train_cache: str,
    flip: bool,
    scale_min: float,
    scale_max: float,
    color_jitter: float,
    early_stopping_patience: int,
    checkpoint_root: str,
    checkpoint_every_steps: int,
    warm_start: bool,
    precision: str,
    jit_compile: bool,
    system_metrics: bool,
    tracking_outage_s: int,
    model_name: str,
    alias: str,
    experiment: str,
    pipeline_run_id: str,
    pipeline_root: str = "",
    train_workers: int = 1,
) -> str:
    """Train on the shards and export a SavedModel; returns the MLflow run id.

    A retry of this task (same pipeline run id) resumes from `checkpoint_root`'s checkpoint.
    `train_workers`: how many replicas run this task (Vertex AI); TF_CONFIG must agree.
    """
    from components.common.config import TrainConfig
    from components.train.trainer import train as run_training

    config = TrainConfig(
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        unet_width=unet_width,
        unet_depth=unet_depth,
        input_height=input_height,
        input_width=input_width,
        seed=seed,
        architecture=architecture,
        backbone=backbone,
        backbone_weights=backbone_weights,
        optimizer=optimizer,
        lr_schedule=lr_schedule,
        momentum=momentum,
        warmup_epochs=warmup_epochs,
        class_weights=class_weights,
        class_weight_power=class_weight_power,
        dice_weight=dice_weight,
        train_cache=train_cache,
        flip=flip,
        scale_min=scale_min,
        scale_max=scale_max,
        color_jitter=color_jitter,
        early_stopping_patience=early_stopping_patience,
        checkpoint_root=checkpoint_root,
        checkpoint_every_steps=checkpoint_every_steps,
        warm_start=warm_start,
        precision=precision,
        jit_compile=jit_compile,
        system_metrics=system_metrics,
        tracking_outage_s=tracking_outage_s,
    )
    return run_training(
        dataset.path,
        model.path,
        config,
        experiment,
        pipeline_run_id,
        model_name=model_name,
        alias=alias,
        pipeline_root=pipeline_root,
        workers=train_workers,
    )


def train_component(image: str):
    """The train component running in `image`."""
    return dsl.component(base_image=image, install_kfp_package=False)(train)
