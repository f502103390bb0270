"""KFP wrapper of the train step."""

from kfp.dsl import Dataset, Input, Metrics, Model, Output

from components.common.settings.config import RunContext, TrainConfig
from components.common.settings.step_component import step_component


# The settings arrive as `config` and `run`; step_component gives kfp one input per field.
def train(
    dataset: Input[Dataset],
    snapshot: Input[Dataset],
    model: Output[Model],
    figures: Output[Metrics],
    config: TrainConfig,
    run: RunContext,
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
    from components.train.epoch_metrics import training_figures
    from components.train.trainer import train as run_training

    run_id = run_training(
        dataset.path,
        model.path,
        config,
        run,
        pipeline_root=pipeline_root,
        workers=train_workers,
        snapshot_dir=snapshot.path,
    )
    for key, value in training_figures(run_id).items():
        figures.log_metric(key, value)
    return run_id


def train_component(image: str):
    """The train component running in `image`."""
    return step_component(train, image)
