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
    seed: int,
    experiment: str,
    pipeline_run_id: str,
) -> str:
    """Train on the shards and export a SavedModel; returns the MLflow run id."""
    from components.common.config import TrainConfig
    from components.train.trainer import train as run_training

    config = TrainConfig(
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        unet_width=unet_width,
        unet_depth=unet_depth,
        seed=seed,
    )
    return run_training(dataset.path, model.path, config, experiment, pipeline_run_id)


def train_component(image: str):
    """The train component running in `image`."""
    return dsl.component(base_image=image, install_kfp_package=False)(train)
