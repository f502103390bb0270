"""Publish a model that passed evaluation: register, export, move aliases (checked); roll back."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass

from components.common import verdict
from components.common.data.digest import folder_sha256
from components.common.settings.config import DEFAULT_ALIAS, RunContext
from components.common.tracking.lineage import LINEAGE_TAGS
from components.common.tracking.registry import alias_version, run_versions
from components.common.tracking.runs import (
    PIPELINE_RUN_TAG,
    check_reachable,
    check_store_exists,
    tracking_uri,
)
from components.publish.checks import (
    ROLLED_BACK_TAG,
    PublishRefused,
    check_champion,
    check_evaluation,
    check_logged_model,
    check_not_rolled_back,
    find_evaluation,
)
from components.publish.export import commit, discard, stage_version
from components.publish.model_card import MODEL_CARD_FILE, render_model_card

log = logging.getLogger(__name__)
PREVIOUS_ALIAS = "previous"
REPLACED_TAG = "segpipe.replaced_version"  # on a version: the champion it replaced
REFUSED_TAG = "segpipe.publish_refused"  # on a version registered, then refused the alias
DATASET_TAG = "segpipe.dataset_sha256"
STATS_FILE = "stats.json"
VERSION_METRICS = ("mean_iou", "pixel_accuracy", "mean_f1")  # tagged on the version


def version_description(
    metrics: dict[str, float], reason: str, data_summary: dict[str, object]
) -> str:
    """The registry version's description: the model card's summary in a few lines."""
    score = ", ".join(f"{k} {metrics[k]:.4f}" for k in VERSION_METRICS if k in metrics)
    counts = [f"{v} {k}" for k, v in data_summary.items() if k.endswith(" examples")]
    lines = [f"Segmentation model by segpipe. {score or 'No scores recorded.'}"]
    lines.append(f"Gate: {reason or 'unknown'}")
    if data_summary.get("location"):
        trained = f" ({', '.join(counts)})" if counts else ""
        lines.append(f"Data: {data_summary['location']}{trained}")
    if data_summary.get("classes"):
        lines.append(f"Classes: {data_summary['classes']}")
    lines.append("The model card (MODEL_CARD.md) is in the export and in the publish run.")
    return "\n\n".join(lines)


@dataclass(frozen=True)
class Publication:
    version: str
    export_path: str
    model_card: str = ""  # the export's MODEL_CARD.md (empty when this run moved nothing)


@dataclass(frozen=True)
class Rollback:
    champion: str  # the version that is champion now
    previous: str | None  # the version now aliased `previous`, if any
    retired: str  # the version that was champion before


def _version_for_run(client, model_name: str, train_run_id: str, source: str):
    """The registered version of `train_run_id`, created on first call only (idempotent)."""
    if not client.search_registered_models(filter_string=f"name = '{model_name}'"):
        client.create_registered_model(model_name)
    existing = run_versions(client, model_name, train_run_id)
    if existing:
        return existing[0]
    return client.create_model_version(model_name, source=source, run_id=train_run_id)


def dataset_fingerprint(dataset_dir: str) -> tuple[str, dict[str, object]]:
    """sha256 of the data set's stats.json, and a short summary of it for the model card."""
    from components.common import storage

    text = storage.read_text(storage.join(dataset_dir, STATS_FILE))
    stats = json.loads(text)
    summary: dict[str, object] = {"location": dataset_dir}
    if isinstance(stats, dict):
        for split, values in (stats.get("splits") or {}).items():
            summary[f"{split} examples"] = values.get("examples")
        if stats.get("class_names"):
            summary["classes"] = ", ".join(stats["class_names"])
    return hashlib.sha256(text.encode("utf-8")).hexdigest(), summary


def publish(
    model_dir: str,
    train_run_id: str,
    run: RunContext,
    export_root: str,
    dataset_dir: str | None = None,
) -> Publication:
    """Register the train run's model as `run.model_name`, export it under `export_root` with
    a model card, then move `run.alias` (and `previous`).

    Fails closed (PublishRefused) unless an evaluation passed for this exact model: the latest
    evaluate run of `run.pipeline_run_id` (or, with none, the latest of this model folder's
    digest) passed the gate, scored a folder with `model_dir`'s digest, and the train run logged
    the same files. The alias moves only if it still points at the version that evaluation
    compared against (compare and swap), and last: if the export fails, `champion` still points
    at a version that was fully exported.
    """
    import mlflow
    from mlflow.tracking import MlflowClient

    from components.common.tracking.runs import step_run

    check_reachable(tracking_uri())  # before anything is registered or copied
    fingerprint, data_summary = dataset_fingerprint(dataset_dir) if dataset_dir else (None, {})
    model_sha256 = folder_sha256(model_dir)
    client = MlflowClient(tracking_uri())
    evaluation = find_evaluation(
        client, run.experiment, run.model_name, model_sha256, run.pipeline_run_id or None
    )
    # publish joins its evaluation's pipeline run (a CLI evaluate names one too)
    pipeline = evaluation.data.tags[PIPELINE_RUN_TAG]
    with step_run("publish", run.experiment, pipeline, dataset_dir=dataset_dir):
        try:
            check_evaluation(evaluation, model_dir, model_sha256, train_run_id, run)
            train_run = client.get_run(train_run_id)
            check_logged_model(train_run, model_sha256, model_dir)
            check_not_rolled_back(client, run, train_run_id)
            check_champion(client, run, evaluation, train_run_id)  # early: nothing written
            return _register_export_promote(
                client,
                model_dir,
                train_run,
                evaluation,
                run,
                export_root,
                fingerprint,
                data_summary,
            )
        except PublishRefused as refusal:
            mlflow.set_tag(verdict.PUBLISH_REFUSED_TAG, str(refusal)[:5000])
            card = _refused_card(client, run, evaluation, train_run_id, refusal)
            mlflow.log_text(card, MODEL_CARD_FILE)
            raise


def _register_export_promote(
    client,
    model_dir: str,
    train_run,
    evaluation,
    run: RunContext,
    export_root: str,
    fingerprint,
    data_summary,
) -> Publication:
    train_run_id = train_run.info.run_id
    pipeline_run_id = evaluation.data.tags[PIPELINE_RUN_TAG]
    metrics = {
        key: value
        for key, value in evaluation.data.metrics.items()
        if not key.startswith("champion/") and key != "gate_passed"
    }
    reason = evaluation.data.tags.get(verdict.REASON_TAG, "")
    source = f"{train_run.info.artifact_uri}/model"
    version = _version_for_run(client, run.model_name, train_run_id, source)
    number = str(version.version)
    # a handful of tags that matter; the rest is in the train and evaluation runs
    tags = {
        PIPELINE_RUN_TAG: pipeline_run_id,
        "segpipe.evaluation_run_id": evaluation.info.run_id,
        verdict.MODEL_SHA256_TAG: evaluation.data.tags[verdict.MODEL_SHA256_TAG],
        **{f"metrics.{k}": f"{metrics[k]:.6f}" for k in VERSION_METRICS if k in metrics},
    }
    if fingerprint:
        tags[DATASET_TAG] = fingerprint
    # the data and settings the model was trained on: the snapshot compares with these, and
    # `segpipe data-diff` finds the manifest through them
    lineage = {k: train_run.data.tags[k] for k in LINEAGE_TAGS if k in train_run.data.tags}
    tags.update(lineage)
    data_summary = {**data_summary, **{k.removeprefix("segpipe."): v for k, v in lineage.items()}}
    for key, value in tags.items():
        client.set_model_version_tag(run.model_name, number, key, value)
    client.update_model_version(
        run.model_name, number, description=version_description(metrics, reason, data_summary)
    )
    card = render_model_card(
        run.model_name,
        number,
        train_run_id=train_run_id,
        pipeline_run_id=pipeline_run_id,
        dataset_sha256=fingerprint,
        dataset_summary=data_summary,
        params=train_run.data.params,
        metrics=metrics,
        decision=reason,
    )
    # complete, but outside the published path until the alias is this version's
    staged = stage_version(model_dir, export_root, run.model_name, number, {MODEL_CARD_FILE: card})

    # Compare and swap, as late as possible. MLflow has no conditional alias update, so a
    # window remains between this read and the two alias writes below (a few requests): two
    # publishes of the same model inside it could both pass. Serialize publishes of a model
    # (schedules run with max_concurrency=1) to close it.
    current = alias_version(client, run.model_name, run.alias)
    if current is not None and str(current.version) == number:
        log.info("publish: %s version %s already is %s", run.model_name, number, run.alias)
        return _published(number, commit(staged), card)  # a retry completes the export
    try:
        check_champion(client, run, evaluation, train_run_id)
    except PublishRefused as refusal:
        discard(staged)
        client.set_model_version_tag(run.model_name, number, REFUSED_TAG, str(refusal)[:5000])
        raise
    if current is not None:
        client.set_registered_model_alias(run.model_name, PREVIOUS_ALIAS, current.version)
        client.set_model_version_tag(run.model_name, number, REPLACED_TAG, current.version)
    client.set_registered_model_alias(run.model_name, run.alias, number)
    path = commit(staged)
    log.info(
        "publish: %s version %s is %s, exported to %s",
        run.model_name,
        number,
        run.alias,
        path,
    )
    return _published(number, path, card)


def _refused_card(client, run: RunContext, evaluation, train_run_id: str, refusal) -> str:
    """The model card of a refused model: what is known of it, and why it was not published."""
    versions = run_versions(client, run.model_name, train_run_id)
    number = str(versions[0].version) if versions else "(not registered)"
    try:
        params = client.get_run(train_run_id).data.params
    except Exception:  # the refusal may be that the train run cannot be read
        params = {}
    return render_model_card(
        run.model_name,
        number,
        train_run_id=train_run_id,
        pipeline_run_id=evaluation.data.tags.get(PIPELINE_RUN_TAG, ""),
        dataset_sha256=None,
        dataset_summary={},
        params=params,
        metrics={k: v for k, v in evaluation.data.metrics.items() if k != "gate_passed"},
        decision=f"REFUSED, not published: {refusal}",
    )


def _published(number: str, path: str, card: str) -> Publication:
    """The publication, recorded on the step's run: its card, version and export folder."""
    import mlflow

    mlflow.log_text(card, MODEL_CARD_FILE)
    mlflow.set_tags({"registered_version": number, "export_path": path})
    return Publication(number, path, card)


def rollback(model_name: str, alias: str = DEFAULT_ALIAS) -> Rollback:
    """Point `alias` back at `previous`; `previous` moves to the version that one replaced.

    When the restored version replaced nothing (or its record is gone), `previous` is removed.
    """
    from mlflow.tracking import MlflowClient

    uri = tracking_uri()
    check_store_exists(uri, "segpipe rollback")
    check_reachable(uri)
    client = MlflowClient(uri)
    current = alias_version(client, model_name, alias)
    restored = alias_version(client, model_name, PREVIOUS_ALIAS)
    if current is None or restored is None:
        missing = alias if current is None else PREVIOUS_ALIAS
        raise LookupError(f"{model_name} has no '{missing}' version: nothing to roll back to")
    client.set_registered_model_alias(model_name, alias, restored.version)
    older = restored.tags.get(REPLACED_TAG)
    if older and older != str(current.version):
        client.set_registered_model_alias(model_name, PREVIOUS_ALIAS, older)
    else:
        client.delete_registered_model_alias(model_name, PREVIOUS_ALIAS)
        older = None
    client.set_model_version_tag(model_name, str(current.version), ROLLED_BACK_TAG, "true")
    log.info("rollback: %s %s is version %s again", model_name, alias, restored.version)
    return Rollback(str(restored.version), older, str(current.version))


PROMOTED_TAG = "segpipe.promoted_by_hand"  # on a version and its pipeline run: who said why


def promote(model_name: str, version: str, reason: str, force: bool, alias: str = DEFAULT_ALIAS):
    """Point `alias` at `version` by an operator's decision, recorded with `reason` on the
    version and on the pipeline run that trained it. `previous` moves to the version replaced.

    A rolled-back version needs `force`: pipeline runs never promote one again.
    Returns the version replaced (None when the alias pointed nowhere or already there).
    """
    from mlflow.tracking import MlflowClient

    if not reason.strip():
        raise ValueError("segpipe promote needs --reason: it is recorded with the promotion")
    uri = tracking_uri()
    check_store_exists(uri, "segpipe promote")
    check_reachable(uri)
    client = MlflowClient(uri)
    target = client.get_model_version(model_name, str(version))
    if (target.tags or {}).get(ROLLED_BACK_TAG) == "true" and not force:
        raise PublishRefused(
            f"{model_name} version {version} was rolled back; promote it again only on purpose: "
            "add --force (the reason is recorded)"
        )
    current = alias_version(client, model_name, alias)
    record = f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} to {alias}: {reason}"
    if current is not None and str(current.version) == str(version):
        log.info("promote: %s version %s already is %s", model_name, version, alias)
        return None
    if current is not None:
        client.set_registered_model_alias(model_name, PREVIOUS_ALIAS, current.version)
    client.set_registered_model_alias(model_name, alias, str(version))
    client.set_model_version_tag(model_name, str(version), PROMOTED_TAG, record)
    client.delete_model_version_tag(model_name, str(version), ROLLED_BACK_TAG)
    parent = _pipeline_parent(client, target)
    if parent is not None:
        client.set_tag(parent, PROMOTED_TAG, f"version {version} {record}")
    return str(current.version) if current is not None else None


def _pipeline_parent(client, version) -> str | None:
    """The MLflow parent run of the pipeline run that trained `version`, if it can be found."""
    from components.common.tracking.pipeline_runs import find_parent

    pipeline_run_id = (version.tags or {}).get(PIPELINE_RUN_TAG)
    if not pipeline_run_id or not version.run_id:
        return None
    experiment_id = client.get_run(version.run_id).info.experiment_id
    parent = find_parent(client, experiment_id, pipeline_run_id)
    return parent.info.run_id if parent is not None else None
