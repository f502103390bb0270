"""Why publish may refuse: no passed evaluation of this exact model, or a champion that moved."""

from __future__ import annotations

import tempfile

from components.common import verdict
from components.common.data.digest import folder_sha256
from components.common.errors import SegpipeError
from components.common.tracking.registry import alias_version, run_versions
from components.common.tracking.runs import PIPELINE_RUN_TAG, STEP_TAG, tracking_uri

ROLLED_BACK_TAG = "segpipe.rolled_back"  # on a version `segpipe rollback` took the alias from


class PublishRefused(SegpipeError, RuntimeError):
    """publish will not promote this model; the message says why and what to do."""

    reason, exit_code = "publish-refused", 3


def check_not_rolled_back(client, run, train_run_id: str) -> None:
    """Refuse to promote a version that was rolled back: only an operator brings it back.

    A retried or resubmitted pipeline run would otherwise make it champion again.
    """
    for version in run_versions(client, run.model_name, train_run_id):
        if (version.tags or {}).get(ROLLED_BACK_TAG) != "true":
            continue
        current = alias_version(client, run.model_name, run.alias)
        if current is not None and str(current.version) == str(version.version):
            return  # an operator restored it: nothing will move
        raise PublishRefused(
            f"refusing to publish: {run.model_name} version {version.version} was rolled "
            f"back, and a pipeline run never promotes a rolled-back version again; to bring it "
            f"back on purpose: segpipe promote --model {run.model_name} --version "
            f"{version.version} --force --reason '...'"
        )


def find_evaluation(
    client, experiment: str, model_name: str, model_sha256: str, pipeline_run_id: str | None
):
    """The latest evaluate run of `pipeline_run_id`, or else of this exact model for `model_name`.

    Refuses when there is none: a model nobody evaluated is never published.
    """
    found = client.get_experiment_by_name(experiment)
    if pipeline_run_id:
        where = f"tags.`{PIPELINE_RUN_TAG}` = '{pipeline_run_id}'"
        missing = (
            f"no evaluation in pipeline run {pipeline_run_id} (MLflow experiment {experiment})"
        )
    else:
        where = (
            f"tags.`{verdict.MODEL_SHA256_TAG}` = '{model_sha256}'"
            f" and tags.`{verdict.MODEL_NAME_TAG}` = '{model_name}'"
        )
        missing = (
            f"no evaluation of this model (sha256 {model_sha256[:12]}) against {model_name} "
            f"in MLflow experiment {experiment}"
        )
    runs = []
    if found is not None:
        runs = client.search_runs(
            [found.experiment_id],
            filter_string=f"{where} and tags.`{STEP_TAG}` = 'evaluate'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
    if not runs:
        raise PublishRefused(
            f"refusing to publish: {missing}. Evaluate it first: python -m components.evaluate "
            f"--dataset DATASET --model-dir MODEL_DIR --model-name {model_name}"
        )
    return runs[0]


def check_evaluation(evaluation, model_dir: str, model_sha256: str, train_run_id: str, run):
    """Refuse unless `evaluation` finished, passed, and judged this model for this alias."""
    tags = evaluation.data.tags
    judged = f"evaluation run {evaluation.info.run_id}"
    if evaluation.info.status != "FINISHED" or verdict.PASSED_TAG not in tags:
        raise PublishRefused(
            f"refusing to publish: the latest evaluation ({judged}) did not finish "
            f"({evaluation.info.status}); re-run evaluation"
        )
    if tags[verdict.PASSED_TAG] != "true":
        raise PublishRefused(
            f"refusing to publish: the gate failed ({judged}): {tags.get(verdict.REASON_TAG)}"
        )
    evaluated = tags.get(verdict.MODEL_SHA256_TAG)
    if evaluated != model_sha256:
        raise PublishRefused(
            f"refusing to publish: {judged} scored a model with sha256 "
            f"{evaluated or 'unrecorded'}, but {model_dir} has sha256 {model_sha256}: this is "
            "not the model that passed; "
            "evaluate this model folder, then publish it"
        )
    evaluated_run = tags.get(verdict.TRAIN_RUN_TAG)
    if evaluated_run and evaluated_run != train_run_id:
        raise PublishRefused(
            f"refusing to publish: {judged} judged the model of train run {evaluated_run}, "
            f"not {train_run_id}"
        )
    target = (tags.get(verdict.MODEL_NAME_TAG), tags.get(verdict.ALIAS_TAG))
    if target != (run.model_name, run.alias):
        raise PublishRefused(
            f"refusing to publish: {judged} compared the model with {target[0]}@{target[1]}, "
            f"not {run.model_name}@{run.alias}; evaluate with --model-name "
            f"{run.model_name} --alias {run.alias}"
        )


def check_logged_model(train_run, model_sha256: str, model_dir: str) -> None:
    """Refuse unless the train run's logged `model` (what the registry serves) is this model.

    Downloads it once: the registry version points at these files, not at `model_dir`.
    """
    import mlflow

    run_id = train_run.info.run_id
    with tempfile.TemporaryDirectory(prefix="segpipe-publish-") as scratch:
        try:
            logged = mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path="model", dst_path=scratch, tracking_uri=tracking_uri()
            )
            logged_sha256 = folder_sha256(logged)
        except Exception as error:  # whatever the store says, the check cannot be made
            raise PublishRefused(
                f"refusing to publish: cannot read the model logged by train run {run_id}: {error}"
            ) from error
    if logged_sha256 != model_sha256:
        raise PublishRefused(
            f"refusing to publish: train run {run_id} logged a model with sha256 "
            f"{logged_sha256}, but {model_dir} has sha256 {model_sha256}: pass the model "
            "folder and the train run id of the same training"
        )


def check_champion(client, run, evaluation, train_run_id: str) -> None:
    """Compare and swap: refuse unless the alias still points where the evaluation saw it.

    A re-run of a publish whose model already holds the alias passes (nothing will move).
    """
    current = alias_version(client, run.model_name, run.alias)
    if current is not None and current.run_id == train_run_id:
        return
    expected = evaluation.data.tags.get(verdict.CHAMPION_VERSION_TAG)
    now = str(current.version) if current is not None else verdict.NO_CHAMPION
    if now != expected:
        raise PublishRefused(
            f"refusing to publish: {run.model_name}@{run.alias} is "
            f"{_describe(now)} now, but the evaluation (run {evaluation.info.run_id}) compared "
            f"the model with {_describe(expected)}; re-run evaluation against the current "
            f"{run.alias}, then publish"
        )


def _describe(version: str | None) -> str:
    if version is None:
        return "an unrecorded version"
    return "no version (there was none)" if version == verdict.NO_CHAMPION else f"version {version}"
