"""KFP wrapper of the publish step."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Markdown, Model, Output


def publish(
    model: Input[Model],
    dataset: Input[Dataset],
    model_card: Output[Markdown],
    train_run_id: str,
    model_name: str,
    export_root: str,
    alias: str,
    experiment: str,
    pipeline_run_id: str,
) -> str:
    """Register the model, export it with a model card, move the alias; returns the version.

    `dataset` is read only for its stats.json fingerprint and summary; `model_card` is the
    export's MODEL_CARD.md.
    """
    from components.common.config import PublishConfig
    from components.publish.publisher import publish as run_publish

    config = PublishConfig(model_name=model_name, export_root=export_root, alias=alias)
    result = run_publish(
        model.path, train_run_id, config, experiment, pipeline_run_id, dataset_dir=dataset.path
    )
    with open(model_card.path, "w", encoding="utf-8") as handle:
        handle.write(result.model_card)
    return result.version


def publish_component(image: str):
    """The publish component running in `image`."""
    return dsl.component(base_image=image, install_kfp_package=False)(publish)
