"""Find the MLflow run a step of a pipeline run logged into."""

from __future__ import annotations

from components.common.tracking.runs import PIPELINE_RUN_TAG, STEP_TAG, tracking_uri


def find_step_run_id(experiment: str, pipeline_run_id: str, step: str) -> str:
    """The id of `step`'s run in pipeline run `pipeline_run_id`; an error when there is none."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri())
    found = client.get_experiment_by_name(experiment)
    runs = (
        client.search_runs(
            [found.experiment_id],
            filter_string=f"tags.`{PIPELINE_RUN_TAG}` = '{pipeline_run_id}'"
            f" and tags.`{STEP_TAG}` = '{step}'",
            max_results=2,
        )
        if found
        else []
    )
    if len(runs) != 1:
        raise LookupError(
            f"expected one {step} run of pipeline run {pipeline_run_id} in MLflow experiment "
            f"{experiment!r} at {tracking_uri()}, found {len(runs)}"
        )
    return runs[0].info.run_id
