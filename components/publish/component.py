"""KFP wrapper of the publish step."""

from kfp.dsl import Dataset, Input, Markdown, Model, Output

from components.common.settings.config import PublishConfig, RunContext
from components.common.settings.step_component import step_component


# The settings arrive as dataclasses; step_component gives kfp one input per field.
def publish(
    model: Input[Model],
    dataset: Input[Dataset],
    model_card: Output[Markdown],
    config: PublishConfig,
    run: RunContext,
    train_run_id: str,
) -> str:
    """Register the model, export it with a model card, move the alias; returns the version.

    Args:
        model: the trained SavedModel, which evaluate passed.
        dataset: the shards' folder, read only for its stats.json fingerprint and summary.
        train_run_id: the MLflow run that logged the model; its logged model is registered.
        pipeline_run_id: the KFP run id; publish checks this run's evaluation.
        model_card: the export's MODEL_CARD.md (output).
    """
    from components.publish.publisher import publish as run_publish

    result = run_publish(
        model.path, train_run_id, run, config.export_root, dataset_dir=dataset.path
    )
    with open(model_card.path, "w", encoding="utf-8") as handle:
        handle.write(result.model_card)
    return result.version


def publish_component(image: str):
    """The publish component running in `image`."""
    return step_component(publish, image)
