"""KFP wrapper of the evaluate step."""

from kfp import dsl
from kfp.dsl import HTML, ClassificationMetrics, Dataset, Input, Metrics, Model, Output


def evaluate(
    dataset: Input[Dataset],
    model: Input[Model],
    metrics: Output[Metrics],
    report: Output[HTML],
    per_image: Output[Dataset],
    confusion: Output[ClassificationMetrics],
    min_mean_iou: float,
    eval_split: str,
    max_drop: float,
    max_class_drop: float,
    allow_absent_classes: str,
    model_name: str,
    alias: str,
    train_run_id: str,
    experiment: str,
    pipeline_run_id: str,
) -> bool:
    """Score the candidate and the champion on the same shards; returns whether the gate passed.

    A single return value on purpose: kfp.local resolves `dsl.If` only on a task's sole
    `Output`. The reason travels in the Metrics artifact's metadata and as the MLflow tag
    `gate.reason`; `report` is the HTML report, `per_image` the per-image IoU Parquet table,
    `confusion` the confusion matrix (pixels; rows: truth, columns: prediction).
    The MLflow run records `train_run_id` and the model's digest for publish to check.
    """
    from components.common.config import GatePolicy
    from components.evaluate.evaluator import evaluate as run_evaluation

    policy = GatePolicy(
        min_mean_iou=min_mean_iou,
        eval_split=eval_split,
        max_drop=max_drop,
        max_class_drop=max_class_drop,
        allow_absent_classes=allow_absent_classes,
    )
    result = run_evaluation(
        dataset.path,
        model.path,
        policy,
        model_name,
        experiment,
        pipeline_run_id,
        report_path=report.path,
        images_path=per_image.path,
        train_run_id=train_run_id,
        alias=alias,
    )
    for key, value in result.metrics.items():
        metrics.log_metric(key, value)
    metrics.metadata["gate_reason"] = result.decision.reason
    per_image.metadata["format"] = "parquet"
    confusion.log_confusion_matrix(*result.confusion_matrix())
    return result.decision.passed


def evaluate_component(image: str):
    """The evaluate component running in `image`."""
    return dsl.component(base_image=image, install_kfp_package=False)(evaluate)
