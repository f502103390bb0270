"""KFP wrapper of the evaluate step."""

from kfp.dsl import HTML, ClassificationMetrics, Dataset, Input, Metrics, Model, Output

from components.common.settings.config import GatePolicy, RunContext
from components.common.settings.step_component import step_component


# The settings arrive as dataclasses; step_component gives kfp one input per field.
def evaluate(
    dataset: Input[Dataset],
    model: Input[Model],
    snapshot: Input[Dataset],
    metrics: Output[Metrics],
    report: Output[HTML],
    per_image: Output[Dataset],
    confusion: Output[ClassificationMetrics],
    policy: GatePolicy,
    run: RunContext,
    train_run_id: str,
) -> bool:
    """Score the candidate and the champion on the same shards; returns whether the gate passed.

    A single return value on purpose: kfp.local resolves `dsl.If` only on a task's sole
    `Output`. The reason travels in the Metrics artifact's metadata and as the MLflow tag
    `gate.reason`. The MLflow run records `train_run_id` and the model's digest for publish
    to check.

    Args:
        dataset: the preprocess step's shards; eval_split is scored.
        model: the candidate SavedModel from train.
        snapshot: the snapshot step's manifest: the run's dataset input.
        metrics: mean IoU and the other scores, with the gate's reason in its metadata (output).
        report: HTML report, candidate against champion (output).
        per_image: per-image IoU as a Parquet table (output).
        confusion: the confusion matrix in pixels, rows truth, columns prediction (output).
        train_run_id: the MLflow run that trained the candidate, recorded for publish.
        pipeline_run_id: the KFP run id; names the MLflow parent run.
    """
    from components.evaluate.evaluator import evaluate as run_evaluation

    result = run_evaluation(
        dataset.path,
        model.path,
        policy,
        run,
        report_path=report.path,
        images_path=per_image.path,
        train_run_id=train_run_id,
        snapshot_dir=snapshot.path,
    )
    for key, value in result.metrics.items():
        metrics.log_metric(key, value)
    metrics.metadata["gate_reason"] = result.decision.reason
    per_image.metadata["format"] = "parquet"
    confusion.log_confusion_matrix(*result.confusion_matrix())
    return result.decision.passed


def evaluate_component(image: str):
    """The evaluate component running in `image`."""
    return step_component(evaluate, image)
