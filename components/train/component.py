"""KFP wrapper of the train step."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from components.common.component_docs import with_setting_docs


# Args: lists the other inputs; with_setting_docs adds each setting's help from config.py.
def train(
    dataset: Input[Dataset],
    snapshot: Input[Dataset],
    model: Output[Model],
    figures: Output[Metrics],
    epochs: int,
    batch_size: int,
    learning_rate: float,
    unet_width: int,
    unet_depth: int,
    input_height: int,
    input_width: int,
    seed: int,
    deterministic: bool,
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
    crop_height: int,
    crop_width: int,
    validate_every: int,
    train_on_val: bool,
    early_stopping_patience: int,
    checkpoint_root: str,
    checkpoint_every_steps: int,
    warm_start: bool,
    precision: str,
    jit_compile: bool,
    flip_tta: bool,
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

    Args:
        dataset: the preprocess step's shards, stats.json and dataset.json.
        snapshot: the snapshot step's manifest: the run's dataset input and lineage tags.
        model: the exported SavedModel (output).
        figures: epochs trained, the best val mean IoU, the last loss (output, KFP UI metrics).
        pipeline_run_id: the KFP run id; names the MLflow parent run and the checkpoint folder.
        pipeline_root: the pipeline root, for checkpoints when checkpoint_root is empty.
        train_workers: how many replicas run this task (a Vertex AI CustomJob); TF_CONFIG
            must agree. A Kubeflow TrainJob runs the launch_train component instead.
    """
    from components.common.config import TrainConfig, config_from_inputs
    from components.train.epoch_metrics import training_figures
    from components.train.trainer import train as run_training

    config = config_from_inputs(TrainConfig, locals())
    run_id = run_training(
        dataset.path,
        model.path,
        config,
        experiment,
        pipeline_run_id,
        model_name=model_name,
        alias=alias,
        pipeline_root=pipeline_root,
        workers=train_workers,
        snapshot_dir=snapshot.path,
    )
    for key, value in training_figures(run_id).items():
        figures.log_metric(key, value)
    return run_id


def train_component(image: str):
    """The train component running in `image`."""
    return dsl.component(base_image=image, install_kfp_package=False)(with_setting_docs(train))
