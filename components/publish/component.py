"""KFP wrapper of the publish step."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Markdown, Model, Output

from components.common.component_docs import with_setting_docs


# Args: lists the other inputs; with_setting_docs adds each setting's help from config.py.
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

    Args:
        model: the trained SavedModel, which evaluate passed.
        dataset: the shards' folder, read only for its stats.json fingerprint and summary.
        train_run_id: the MLflow run that logged the model; its logged model is registered.
        pipeline_run_id: the KFP run id; publish checks this run's evaluation.
        model_card: the export's MODEL_CARD.md (output).
    """
    from components.common.config import PublishConfig, config_from_inputs
    from components.publish.publisher import publish as run_publish

    config = config_from_inputs(PublishConfig, locals())
    result = run_publish(
        model.path, train_run_id, config, experiment, pipeline_run_id, dataset_dir=dataset.path
    )
    with open(model_card.path, "w", encoding="utf-8") as handle:
        handle.write(result.model_card)
    return result.version


def publish_component(image: str):
    """The publish component running in `image`."""
    return dsl.component(base_image=image, install_kfp_package=False)(with_setting_docs(publish))
