"""KFP wrapper of the finish step (the pipeline's exit task: it runs however the steps ended)."""

from typing import NamedTuple

from kfp.dsl import Markdown, Output, PipelineTaskFinalStatus

from components.common.settings.step_component import step_component


# The settings arrive as dataclasses; step_component gives kfp one input per field.
def finish(
    data_dir: str,
    experiment: str,
    pipeline_run_id: str,
    kfp_run_name: str,
    pipeline_root: str,
    status: PipelineTaskFinalStatus,
    summary: Output[Markdown],
) -> NamedTuple(
    "Outputs", [("passed", bool), ("train_run_id", str), ("outcome", str), ("parent_run_id", str)]
):
    """Close the pipeline run's MLflow parent run with the steps' final state and headline.

    Returns the gate decision, the train run, the snapshot's outcome ("unchanged, nothing to
    do" when the run ended after it) and the MLflow parent run: the pipeline's outputs.

    Args:
        data_dir: the data folder the run read, named in the parent run and the headline.
        pipeline_run_id: the KFP run id; finds the MLflow parent run and its step runs.
        kfp_run_name: the KFP run's name, on the parent run; finds an unnested preprocess.
        pipeline_root: the pipeline root; the run's folder under it is tagged on the parent.
        status: how the steps ended (KFP fills it in).
        summary: the headline as Markdown (output).
    """
    from collections import namedtuple

    from components.finish.closer import close_pipeline_run, describe

    headline = close_pipeline_run(
        experiment,
        pipeline_run_id,
        status.state,
        data_dir=data_dir,
        kfp_run_name=kfp_run_name,
        pipeline_root=pipeline_root,
    )
    with open(summary.path, "w", encoding="utf-8") as handle:
        handle.write(describe(headline, data_dir, kfp_run_name) + "\n")
    outputs = namedtuple("Outputs", ["passed", "train_run_id", "outcome", "parent_run_id"])
    return outputs(headline.passed, headline.train_run_id, headline.outcome, headline.parent_run_id)


def finish_component(image: str):
    """The finish component running in `image`."""
    return step_component(finish, image)
