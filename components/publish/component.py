"""KFP wrapper of the publish step."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Model


def publish(
    model: Input[Model],
    dataset: Input[Dataset],
    train_run_id: str,
    model_name: str,
    export_root: str,
    alias: str,
    experiment: str,
    pipeline_run_id: str,
) -> str:
    """Register the model, export it with a model card, move the alias; returns the version.

    `dataset` is read only for its stats.json fingerprint and summary.
    """
    from components.common.config import PublishConfig
    from components.publish.publisher import publish as run_publish

    config = PublishConfig(model_name=model_name, export_root=export_root, alias=alias)
    return run_publish(
        model.path, train_run_id, config, experiment, pipeline_run_id, dataset_dir=dataset.path
    ).version


def publish_component(image: str):
    """The publish component running in `image`."""
    return dsl.component(base_image=image, install_kfp_package=False)(publish)
