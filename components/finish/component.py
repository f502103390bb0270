"""KFP wrapper of the finish step (the pipeline's exit task: it runs however the steps ended)."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Markdown, Output, PipelineTaskFinalStatus


def finish(
    experiment: str,
    data_dir: str,
    pipeline_run_id: str,
    kfp_run_name: str,
    pipeline_root: str,
    status: PipelineTaskFinalStatus,
    summary: Output[Markdown],
) -> NamedTuple("Outputs", [("passed", bool), ("train_run_id", str)]):
    """Close the pipeline run's MLflow parent run with the steps' final state and headline.

    Returns the gate decision and the train run (the pipeline's outputs); `summary` is the
    headline as Markdown.
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
    outputs = namedtuple("Outputs", ["passed", "train_run_id"])
    return outputs(headline.passed, headline.train_run_id)


def finish_component(image: str):
    """The finish component running in `image`."""
    return dsl.component(base_image=image, install_kfp_package=False)(finish)
