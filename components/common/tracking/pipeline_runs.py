"""The pipeline run's parent run in MLflow: its name, and the preprocess run nested under it."""

from __future__ import annotations

import datetime
import logging
import os

from components.common import storage

PIPELINE_RUN_TAG = "segpipe.pipeline_run_id"
STEP_TAG = "segpipe.step"
PARENT_TAG = "mlflow.parentRunId"  # MLflow nests a run under the run this tag names
NOTE_TAG = "mlflow.note.content"  # the run page's Description (Markdown)
DATA_DIR_TAG = "segpipe.data_dir"
REUSED_TAG = "segpipe.reused_run_id"  # on a pointer run: the preprocess run whose output it reused
LINEAGE_FILE = "lineage.json"  # written by preprocess into the data set: its run id, its data_dir
RUNNING = "RUNNING"

log = logging.getLogger(__name__)


def run_title(data_dir: str, started_ms: int) -> str:
    """A name a person can tell runs apart by: the data set's folder name and the start time."""
    name = os.path.basename(data_dir.rstrip("/")) or "pipeline"
    when = datetime.datetime.fromtimestamp(started_ms / 1000)
    return f"{name} {when:%m-%d %H:%M}"  # short: the runs table shows about 20 characters


def read_lineage(dataset_dir: str | None) -> dict:
    """The data set's lineage.json (preprocess run id, data_dir), or {} when there is none."""
    if not dataset_dir:
        return {}
    path = storage.join(dataset_dir, LINEAGE_FILE)
    return storage.read_json(path) if storage.exists(path) else {}


def find_parent(client, experiment_id: str, pipeline_run_id: str):
    """The parent run of `pipeline_run_id`, or None."""
    runs = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{PIPELINE_RUN_TAG}` = '{pipeline_run_id}'"
        f" and tags.`{STEP_TAG}` = 'pipeline'",
        max_results=1,
    )
    return runs[0] if runs else None


def ensure_parent(client, experiment_id: str, pipeline_run_id: str, lineage: dict) -> str:
    """The parent run's id, created on first use and (re)opened as RUNNING while a step runs.

    The data set's preprocess run, when `lineage` names it, is nested under the parent first,
    so the parent can start when preprocess started.
    """
    parent = find_parent(client, experiment_id, pipeline_run_id)
    if parent is None:
        preprocess = _preprocess_run(client, lineage.get("preprocess_run_id"))
        adopt = preprocess is not None and PARENT_TAG not in preprocess.data.tags
        started = preprocess.info.start_time if adopt else _now_ms()
        data_dir = str(lineage.get("data_dir", ""))
        tags = {PIPELINE_RUN_TAG: pipeline_run_id, STEP_TAG: "pipeline"}
        if data_dir:
            tags[DATA_DIR_TAG] = data_dir
        parent = client.create_run(
            experiment_id,
            start_time=started,
            run_name=run_title(data_dir, started),
            tags=tags,
        )
        parent_id = parent.info.run_id
        if preprocess is not None:
            nest_preprocess(client, parent_id, pipeline_run_id, preprocess)
        return parent_id
    parent_id = parent.info.run_id
    if parent.info.status != RUNNING:  # an earlier step ended it; a later step reopens it
        client.update_run(parent_id, status=RUNNING)
    if not has_step(client, experiment_id, pipeline_run_id, "preprocess"):
        preprocess = _preprocess_run(client, lineage.get("preprocess_run_id"))
        if preprocess is not None:
            nest_preprocess(client, parent_id, pipeline_run_id, preprocess)
    return parent_id


def has_step(client, experiment_id: str, pipeline_run_id: str, step: str) -> bool:
    """Whether a run of `step` is already tagged with this pipeline run."""
    return bool(
        client.search_runs(
            [experiment_id],
            filter_string=f"tags.`{PIPELINE_RUN_TAG}` = '{pipeline_run_id}'"
            f" and tags.`{STEP_TAG}` = '{step}'",
            max_results=1,
        )
    )


def nest_preprocess(client, parent_id: str, pipeline_run_id: str, preprocess) -> None:
    """Nest the preprocess run under the parent; if another pipeline run holds it (its output
    came from the KFP cache), nest a finished pointer run that names it and copies its figures.

    Preprocess takes no pipeline run id, so that identical inputs hit the cache: it cannot
    nest itself, and a cached output belongs to the run that made it.
    """
    run_id = preprocess.info.run_id
    owner = preprocess.data.tags.get(PARENT_TAG)
    if owner in (None, parent_id):
        client.set_tag(run_id, PARENT_TAG, parent_id)
        client.set_tag(run_id, PIPELINE_RUN_TAG, pipeline_run_id)
        return
    from mlflow.entities import Metric, Param

    pointer = client.create_run(
        preprocess.info.experiment_id,
        run_name="preprocess (reused)",
        tags={
            PARENT_TAG: parent_id,
            PIPELINE_RUN_TAG: pipeline_run_id,
            STEP_TAG: "preprocess",
            REUSED_TAG: run_id,
            NOTE_TAG: f"The data set came from the KFP cache: made by preprocess run `{run_id}` "
            f"of another pipeline run (`{owner}`); its artifacts are there.",
        },
    )
    now = _now_ms()
    client.log_batch(
        pointer.info.run_id,
        metrics=[Metric(k, v, now, 0) for k, v in preprocess.data.metrics.items()],
        params=[Param(k, v) for k, v in preprocess.data.params.items()],
    )
    client.set_terminated(pointer.info.run_id, "FINISHED")


def find_unnested_preprocess(client, experiment_id: str, tokens: list[str]):
    """This pipeline run's preprocess run when no later step nested it (preprocess failed).

    KFP writes a task's outputs under a folder named by the pipeline run (the run's name
    locally, its id on a cluster), and preprocess logs that path as `output_dir`.
    """
    for token in tokens:
        if len(token) < 8 or "'" in token:  # too short to be unique, or unsafe in a filter
            continue
        runs = client.search_runs(
            [experiment_id],
            filter_string=f"tags.`{STEP_TAG}` = 'preprocess'"
            f" and params.output_dir LIKE '%{token}%'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        if runs and PARENT_TAG not in runs[0].data.tags:
            return runs[0]
    return None


def _preprocess_run(client, run_id: str | None):
    if not run_id:
        return None
    from mlflow.exceptions import MlflowException

    try:
        return client.get_run(run_id)
    except MlflowException as error:
        if error.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        # a data set made against another store: nothing here to nest
        log.warning("preprocess run %s is not in this MLflow store", run_id)
        return None


def _now_ms() -> int:
    return int(datetime.datetime.now().timestamp() * 1000)
