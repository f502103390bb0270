"""KFP wrapper of the evaluate step."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output


def evaluate(
    dataset: Input[Dataset],
    model: Input[Model],
    metrics: Output[Metrics],
    min_mean_iou: float,
    eval_split: str,
    model_name: str,
    experiment: str,
    pipeline_run_id: str,
) -> bool:
    """Score the candidate and the champion on the same shards; returns whether the gate passed.

    A single output on purpose: kfp.local resolves `dsl.If` only on a task's sole `Output`.
    The reason travels in the Metrics artifact's metadata and as the MLflow tag `gate.reason`.
    """
    from components.common.config import GatePolicy
    from components.evaluate.evaluator import evaluate as run_evaluation

    policy = GatePolicy(min_mean_iou=min_mean_iou, eval_split=eval_split)
    result = run_evaluation(
        dataset.path, model.path, policy, model_name, experiment, pipeline_run_id
    )
    for key, value in result.metrics.items():
        metrics.log_metric(key, value)
    metrics.metadata["gate_reason"] = result.decision.reason
    return result.decision.passed


def evaluate_component(image: str):
    """The evaluate component running in `image`."""
    return dsl.component(base_image=image, install_kfp_package=False)(evaluate)
