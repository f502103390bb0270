"""MLflow Model Registry lookups shared by evaluate and publish."""

from __future__ import annotations

import tempfile


def alias_version(client, model_name: str, alias: str):
    """The ModelVersion behind `model_name@alias`, or None when either does not exist."""
    models = client.search_registered_models(filter_string=f"name = '{model_name}'")
    if not models or alias not in models[0].aliases:
        return None
    return client.get_model_version(model_name, models[0].aliases[alias])


def run_versions(client, model_name: str, run_id: str) -> list:
    """The registered versions of `model_name` that `run_id` logged (none, or one)."""
    return client.search_model_versions(
        filter_string=f"name = '{model_name}' and run_id = '{run_id}'"
    )


def download_version(model_version, dst_dir: str | None = None) -> str:
    """Local copy of a registered version's SavedModel; returns its folder."""
    import mlflow

    return mlflow.artifacts.download_artifacts(
        artifact_uri=model_version.source, dst_path=dst_dir or tempfile.mkdtemp(prefix="segpipe-")
    )
