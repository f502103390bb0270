"""Register a passed model in the MLflow Model Registry, move its alias, export it."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from mlflow.tracking import MlflowClient

from components.common.config import PublishConfig
from components.common.registry import alias_version
from components.common.tracking import step_run, tracking_uri
from components.publish.export import export_version

log = logging.getLogger(__name__)
PREVIOUS_ALIAS = "previous"


@dataclass(frozen=True)
class Publication:
    version: str
    export_path: str


def _version_for_run(client: MlflowClient, model_name: str, train_run_id: str, source: str):
    """The registered version of `train_run_id`, created on first call only (idempotent)."""
    if not client.search_registered_models(filter_string=f"name = '{model_name}'"):
        client.create_registered_model(model_name)
    existing = client.search_model_versions(
        filter_string=f"name = '{model_name}' and run_id = '{train_run_id}'"
    )
    if existing:
        return existing[0]
    return client.create_model_version(model_name, source=source, run_id=train_run_id)


def publish(
    model_dir: str,
    train_run_id: str,
    config: PublishConfig,
    experiment: str = "segpipe",
    pipeline_run_id: str = "manual",
) -> Publication:
    """Register the train run's model, point `config.alias` at it, export it."""
    with step_run("publish", experiment, pipeline_run_id):
        client = MlflowClient(tracking_uri())
        source = f"{client.get_run(train_run_id).info.artifact_uri}/model"
        version = _version_for_run(client, config.model_name, train_run_id, source)
        current = alias_version(client, config.model_name, config.alias)
        if current is not None and current.version != version.version:
            client.set_registered_model_alias(config.model_name, PREVIOUS_ALIAS, current.version)
        client.set_registered_model_alias(config.model_name, config.alias, version.version)
        path = export_version(
            model_dir, config.export_root, config.model_name, str(version.version)
        )
        log.info(
            "publish: %s version %s is %s, exported to %s",
            config.model_name,
            version.version,
            config.alias,
            path,
        )
        return Publication(str(version.version), path)
