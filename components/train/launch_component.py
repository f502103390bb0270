"""KFP wrapper of the train step on several workers: a Kubeflow Trainer TrainJob."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Model, Output

from components.common.component_docs import with_setting_docs


# Args: lists the other inputs; with_setting_docs adds each setting's help from config.py.
def launch_train(
    dataset: Input[Dataset],
    snapshot: Input[Dataset],
    model: Output[Model],
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
    train_workers: int,
    train_cpu: str,
    train_memory: str,
    train_accelerator: str,
    train_gpus: int,
    mlflow_secret: str,
    trainer_image: str,
    node_selector: str = "",
    pipeline_root: str = "",
) -> str:
    """Train on `train_workers` pods of segpipe's TrainingRuntime; returns the MLflow run id.

    The TrainJob is named after the pipeline run: a retry of this task re-attaches to it.

    Args:
        dataset: the preprocess step's shards, stats.json and dataset.json.
        snapshot: the snapshot step's manifest: logged to the chief's run as its dataset input.
        model: the exported SavedModel, collected from the chief's MLflow run (output).
        pipeline_run_id: the KFP run id; names the TrainJob and the MLflow parent run.
        trainer_image: the image of the worker pods.
        node_selector: "label=value,label=value" for the worker pods.
        pipeline_root: the pipeline root, for checkpoints when checkpoint_root is empty.
    """
    from components.common.config import TrainConfig, config_from_inputs
    from components.train.launcher import Workers, launch

    config = config_from_inputs(TrainConfig, locals())
    selector = tuple(tuple(pair.split("=", 1)) for pair in node_selector.split(",") if pair.strip())
    workers = Workers(
        count=train_workers,
        image=trainer_image,
        cpu=train_cpu,
        memory=train_memory,
        accelerator=train_accelerator,
        accelerators=train_gpus,
        node_selector=selector,
        mlflow_secret=mlflow_secret,
    )
    return launch(
        dataset.uri,
        model.path,
        config,
        workers,
        experiment,
        pipeline_run_id,
        model_name,
        alias,
        pipeline_root,
        snapshot_dir=snapshot.path,
    )


def launch_train_component(image: str):
    """The TrainJob-launching train component, running in `image` (no accelerator needed)."""
    return dsl.component(base_image=image, install_kfp_package=False)(
        with_setting_docs(launch_train)
    )
