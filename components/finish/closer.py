"""Close a pipeline run in MLflow: its headline on the parent run, no step left RUNNING."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field

from components.common import verdict
from components.common.errors import StepFailed
from components.common.tracking.lineage import (
    CHANGED_OUTCOME,
    DATA_CHANGES_TAG,
    LINEAGE_UNVERIFIED_TAG,
    OUTCOME_TAG,
    SKIPPED_TAG,
    UNCHANGED_OUTCOME,
)
from components.common.tracking.pipeline_runs import (
    NOTE_TAG,
    PIPELINE_RUN_TAG,
    STEP_TAG,
    ensure_parent,
    find_parent,
    find_unnested_preprocess,
    has_step,
    nest_preprocess,
)
from components.common.tracking.runs import (
    ERROR_TAG,
    check_reachable,
    prepare_experiment,
    store_lock,
    tracking_uri,
)

# KFP's final state of the pipeline's steps -> the parent run's MLflow status
MLFLOW_STATUS = {"SUCCEEDED": "FINISHED", "CANCELLED": "KILLED", "CANCELED": "KILLED"}
CLOSED_TAG = "segpipe.closed_by_finish"  # on a run found RUNNING after the pipeline ended

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Headline:
    """What the pipeline run came to, as written on its parent run."""

    status: str  # the parent's MLflow status: FINISHED | FAILED | KILLED
    parent_run_id: str
    experiment_id: str
    passed: bool
    reason: str
    mean_iou: float | None
    registered_version: str  # "" when nothing was published
    model_name: str  # the registered model (and alias) evaluate compared against
    alias: str
    train_run_id: str  # "" when train did not finish
    failed_steps: dict[str, str] = field(default_factory=dict)  # step -> its error
    closed_runs: list[str] = field(default_factory=list)  # left RUNNING, marked now
    outcome: str = ""  # the snapshot's: changed, or unchanged (the run ended there); "" no snapshot
    data_changes: str = ""  # the snapshot's headline: what changed since the champion's data
    refused: str = ""  # why publish refused a model that passed the gate (champion moved, ...)
    lineage_warning: str = ""  # the snapshot could not verify the champion's lineage: why

    @property
    def unchanged(self) -> bool:
        return self.outcome == UNCHANGED_OUTCOME


def wait_reachable(uri: str, wait_s: float) -> None:
    """Return once the tracking server answers; RuntimeError after `wait_s` seconds."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            check_reachable(uri)
            return
        except RuntimeError as error:
            if time.monotonic() >= deadline:
                raise StepFailed(
                    f"{error}; tried for {wait_s:g} s: the pipeline run's MLflow runs are left "
                    "as they are (some may read RUNNING)"
                ) from error
        time.sleep(5)


def close_pipeline_run(
    experiment: str,
    pipeline_run_id: str,
    kfp_state: str,
    data_dir: str = "",
    kfp_run_name: str = "",
    pipeline_root: str = "",
    wait_s: float = 120.0,
    uri: str = "",
) -> Headline:
    """Write the pipeline run's headline on its parent run and close it with `kfp_state`, in the
    store at `uri` (default: MLFLOW_TRACKING_URI's).

    The parent is created if no step got to it (preprocess failed), and this run's
    preprocess is nested under it if no later step did so. Step runs still RUNNING (a task
    killed, or failed while the server was down) are marked FAILED (KILLED if cancelled).
    """
    from mlflow.tracking import MlflowClient

    uri = uri or tracking_uri()
    wait_reachable(uri, wait_s)
    client = MlflowClient(uri)
    with store_lock(uri):
        experiment_id = prepare_experiment(client, experiment)
    status = MLFLOW_STATUS.get(kfp_state.upper(), "FAILED")
    parent = find_parent(client, experiment_id, pipeline_run_id)
    parent_id = (
        parent.info.run_id
        if parent
        else ensure_parent(client, experiment_id, pipeline_run_id, {"data_dir": data_dir})
    )
    if not has_step(client, experiment_id, pipeline_run_id, "preprocess"):
        found = find_unnested_preprocess(client, experiment_id, [kfp_run_name, pipeline_run_id])
        if found is not None:
            nest_preprocess(client, parent_id, pipeline_run_id, found)
    steps = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{PIPELINE_RUN_TAG}` = '{pipeline_run_id}'",
        order_by=["attributes.start_time DESC"],
    )
    steps = [run for run in steps if run.data.tags.get(STEP_TAG) != "pipeline"]
    closed = _close_leftovers(client, steps, "KILLED" if status == "KILLED" else "FAILED")
    headline = _headline(steps, status, parent_id, experiment_id, closed)
    evaluation = _latest(steps, "evaluate")
    _write(client, parent_id, headline, evaluation, pipeline_run_id, kfp_run_name, data_dir)
    folder = _run_folder(pipeline_root, kfp_run_name)
    if folder:
        client.set_tag(parent_id, "segpipe.run_folder", folder)
    client.set_terminated(parent_id, status)
    return headline


def _close_leftovers(client, steps, status: str) -> list[str]:
    closed = []
    for run in steps:
        if run.info.status == "RUNNING":
            client.set_tag(run.info.run_id, CLOSED_TAG, "true")
            client.set_terminated(run.info.run_id, status)
            closed.append(run.info.run_id)
            log.warning(
                "finish: run %s (%s) was left RUNNING; marked %s",
                run.info.run_id,
                run.data.tags.get(STEP_TAG),
                status,
            )
    return closed


def _latest(steps, step: str):
    """The latest run of `step` (steps are sorted newest first), or None."""
    return next((run for run in steps if run.data.tags.get(STEP_TAG) == step), None)


def _headline(steps, status, parent_id, experiment_id, closed) -> Headline:
    evaluation, train, publish = (_latest(steps, s) for s in ("evaluate", "train", "publish"))
    snapshot = _latest(steps, "snapshot")
    tags = evaluation.data.tags if evaluation else {}
    outcome = ""
    if snapshot is not None and snapshot.info.status == "FINISHED":
        skipped = snapshot.data.tags.get(SKIPPED_TAG) == "true"
        outcome = UNCHANGED_OUTCOME if skipped else CHANGED_OUTCOME
    data_changes = snapshot.data.tags.get(DATA_CHANGES_TAG, "") if snapshot else ""
    failed = {
        run.data.tags.get(STEP_TAG, "?"): run.data.tags.get(ERROR_TAG, "no error recorded")
        for run in reversed(steps)
        if run.info.status == "FAILED" and run.info.run_id not in closed
    }
    return Headline(
        status=status,
        parent_run_id=parent_id,
        experiment_id=experiment_id,
        passed=tags.get(verdict.PASSED_TAG) == "true",
        reason=tags.get(
            verdict.REASON_TAG,
            UNCHANGED_OUTCOME if outcome == UNCHANGED_OUTCOME else "not evaluated",
        ),
        mean_iou=evaluation.data.metrics.get("mean_iou") if evaluation else None,
        registered_version=publish.data.tags.get("registered_version", "") if publish else "",
        model_name=tags.get(verdict.MODEL_NAME_TAG, ""),
        alias=tags.get(verdict.ALIAS_TAG, ""),
        train_run_id=train.info.run_id if train and train.info.status == "FINISHED" else "",
        failed_steps=failed,
        closed_runs=closed,
        outcome=outcome,
        data_changes=data_changes,
        refused=publish.data.tags.get(verdict.PUBLISH_REFUSED_TAG, "") if publish else "",
        lineage_warning=snapshot.data.tags.get(LINEAGE_UNVERIFIED_TAG, "") if snapshot else "",
    )


def _write(client, parent_id, headline, evaluation, pipeline_run_id, kfp_run_name, data_dir):
    """The headline as the parent's metrics, tags and description."""
    from mlflow.entities import Metric

    metrics = {}
    if evaluation is not None:
        # rounded: the runs table shows a headline, not float noise (the evaluate run keeps all)
        metrics = {
            k: round(v, 4)
            for k, v in evaluation.data.metrics.items()
            if not k.startswith("champion/")
        }
    now = int(time.time() * 1000)
    if metrics:
        client.log_batch(parent_id, metrics=[Metric(k, v, now, 0) for k, v in metrics.items()])
    tags = {
        verdict.REASON_TAG: headline.reason[:5000],
        "kfp.run_id": pipeline_run_id,
        NOTE_TAG: describe(headline, data_dir, kfp_run_name),
    }
    if evaluation is not None:  # no gate ran (unchanged data, an earlier step failed): no verdict
        tags[verdict.PASSED_TAG] = str(headline.passed).lower()
    if kfp_run_name:
        tags["kfp.run_name"] = kfp_run_name
    if headline.outcome:
        tags.update({OUTCOME_TAG: headline.outcome, DATA_CHANGES_TAG: headline.data_changes})
    if headline.registered_version:
        tags.update(
            registered_version=headline.registered_version, registered_model=headline.model_name
        )
    if headline.train_run_id:
        tags[verdict.TRAIN_RUN_TAG] = headline.train_run_id
    if headline.refused:
        tags[verdict.PUBLISH_REFUSED_TAG] = headline.refused[:5000]
    if headline.lineage_warning:
        tags[LINEAGE_UNVERIFIED_TAG] = headline.lineage_warning[:5000]
    for key, value in tags.items():
        client.set_tag(parent_id, key, value)


def describe(headline: Headline, data_dir: str = "", kfp_run_name: str = "") -> str:
    """The parent run's description (Markdown): score, decision, publication, failures."""
    lines = []
    if headline.unchanged:  # ended after the snapshot: nothing trained, judged or published
        lines += [f"**{UNCHANGED_OUTCOME.capitalize()}**", headline.data_changes]
    elif headline.data_changes:
        lines.append(f"Data: {headline.data_changes}")
    if headline.lineage_warning:
        lines.append(f"**Warning**: {headline.lineage_warning}")
    if headline.mean_iou is not None:
        lines.append(f"**mean IoU {headline.mean_iou:.4f}**")
    decision = "PASSED" if headline.passed else "FAILED"
    if not headline.unchanged:
        lines.append(f"Gate {decision}: {headline.reason}")
    if headline.unchanged:
        lines.append("No new version")
    elif headline.registered_version:
        published = f"{headline.model_name} version {headline.registered_version}"
        lines.append(f"Published **{published}** as `{headline.alias}`")
    elif headline.refused:
        lines.append(f"**Refused, not published**: {headline.refused}")
    elif headline.status == "FINISHED":
        lines.append("Nothing published")
    for step, error in headline.failed_steps.items():
        lines.append(f"**{step} failed**: {error}")
    if headline.closed_runs:
        count = len(headline.closed_runs)
        marked = "KILLED" if headline.status == "KILLED" else "FAILED"
        lines.append(f"{count} step run(s) left RUNNING were marked {marked}")
    if data_dir:
        lines.append(f"Data: `{data_dir}`")
    if kfp_run_name:
        lines.append(f"KFP run: `{kfp_run_name}`")
    return "\n\n".join(lines)


def _run_folder(pipeline_root: str, kfp_run_name: str) -> str:
    """The local run's folder under the pipeline root (kfp.local), or "" elsewhere."""
    if not pipeline_root or not kfp_run_name or "://" in pipeline_root:
        return ""
    folder = os.path.join(pipeline_root, kfp_run_name)
    return folder if os.path.isdir(folder) else ""
