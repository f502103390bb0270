"""KFP wrapper of the train step on several workers: a Kubeflow Trainer TrainJob."""

from kfp.dsl import Dataset, Input, Model, Output

from components.common.settings.config import ClusterConfig, RunContext, TrainConfig
from components.common.settings.step_component import step_component


# The settings arrive as dataclasses; step_component gives kfp one input per field.
def launch_train(
    dataset: Input[Dataset],
    snapshot: Input[Dataset],
    model: Output[Model],
    config: TrainConfig,
    cluster: ClusterConfig,
    run: RunContext,
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
    from components.train.launcher import Workers, launch

    selector = tuple(tuple(pair.split("=", 1)) for pair in node_selector.split(",") if pair.strip())
    workers = Workers(
        count=cluster.train_workers,
        image=trainer_image,
        cpu=cluster.train_cpu,
        memory=cluster.train_memory,
        accelerator=cluster.train_accelerator,
        accelerators=cluster.train_gpus,
        node_selector=selector,
        mlflow_secret=cluster.mlflow_secret,
    )
    return launch(
        dataset.uri,
        model.path,
        config,
        workers,
        run,
        pipeline_root,
        snapshot_dir=snapshot.path,
    )


def launch_train_component(image: str):
    """The TrainJob-launching train component, running in `image` (no accelerator needed)."""
    return step_component(launch_train, image)
