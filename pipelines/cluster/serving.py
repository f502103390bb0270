"""A KServe InferenceService for the champion: TensorFlow Serving on the versioned exports.

KServe's TensorFlow runtime (`kserve-tensorflow-serving`) copies `storageUri` to /mnt/models
and runs `tensorflow_model_server --model_base_path=/mnt/models`, which serves the highest
numbered folder there. `storageUri` is therefore the model's export folder,
`<export_root>/<model>/`, whose numbered folders publish writes (complete, with `_SUCCESS`)
only for versions that became champion. After a rollback the champion is no longer the highest
folder; the manifest is then refused rather than serving a version the registry retired.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from components.common import storage
from components.common.settings.config import DEFAULT_ALIAS

API_VERSION = "serving.kserve.io/v1beta1"
RUNTIME = "kserve-tensorflow-serving"  # KServe's ClusterServingRuntime for TF SavedModels
SUCCESS_MARKER = "_SUCCESS"  # components/publish/export.py: a version copied complete
VERSION_LABEL = "segpipe.io/model-version"
NAME_RULE = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")  # a DNS-1035 label: the service's host


class ServingRefused(ValueError):
    """The manifest would not serve the champion; the message says why and what to do."""


@dataclass(frozen=True)
class ServingTarget:
    """What the InferenceService serves: `model@alias`, version `version`, from `base_uri`."""

    model: str
    alias: str
    version: str
    base_uri: str  # <export_root>/<model>: TF Serving's model base path


def exported_versions(export_root: str, model: str) -> list[int]:
    """The versions exported complete under `<export_root>/<model>/`, ascending."""
    base = storage.join(export_root, model)
    found = []
    for marker in storage.glob(storage.join(base, "*", SUCCESS_MARKER)):
        folder = marker.rstrip("/").rsplit("/", 2)[-2]
        if folder.isdigit():
            found.append(int(folder))
    return sorted(found)


def serving_target(export_root: str, model: str, alias: str, champion: str) -> ServingTarget:
    """The target for `champion` (the version `alias` names), refused unless it is exported
    complete and is the highest exported version (the one TF Serving would serve)."""
    versions = exported_versions(export_root, model)
    base = storage.join(export_root, model)
    if int(champion) not in versions:
        raise ServingRefused(
            f"{model}@{alias} is version {champion}, but {base}/{champion}/ is not a complete "
            f"export (exported: {', '.join(map(str, versions)) or 'none'}); is --export-root "
            "the pipeline's export_root?"
        )
    if versions[-1] != int(champion):
        raise ServingRefused(
            f"{model}@{alias} is version {champion}, but TF Serving serves the highest "
            f"exported version, {versions[-1]} (rolled back?); move {base}/{versions[-1]}/ out "
            f"of {base}/ or promote version {versions[-1]}, then write the manifest again"
        )
    return ServingTarget(model, alias, champion, base)


def inference_service(
    target: ServingTarget,
    name: str = "",
    namespace: str = "",
    service_account: str = "",
    cpu: str = "1",
    memory: str = "2Gi",
) -> dict:
    """The InferenceService: KServe's TensorFlow Serving runtime on `target.base_uri`."""
    name = name or target.model
    if not NAME_RULE.fullmatch(name):
        raise ServingRefused(
            f"{name!r} is not a valid InferenceService name (lower-case letters, digits and "
            "'-', starting with a letter, at most 63): give one with --name"
        )
    metadata: dict = {
        "name": name,
        "labels": {VERSION_LABEL: target.version, "segpipe.io/alias": target.alias},
        "annotations": {"segpipe.io/registered-model": f"{target.model}@{target.alias}"},
    }
    if namespace:
        metadata["namespace"] = namespace
    predictor: dict = {
        "model": {
            "modelFormat": {"name": "tensorflow", "version": "2"},
            "runtime": RUNTIME,
            "storageUri": target.base_uri,
            "resources": {
                "requests": {"cpu": cpu, "memory": memory},
                "limits": {"cpu": cpu, "memory": memory},
            },
        }
    }
    if service_account:  # one with read access to the bucket (Workload Identity)
        predictor["serviceAccountName"] = service_account
    return {
        "apiVersion": API_VERSION,
        "kind": "InferenceService",
        "metadata": metadata,
        "spec": {"predictor": predictor},
    }


def champion_version(model: str, alias: str = DEFAULT_ALIAS) -> str:
    """The version `model@alias` names in the registry at $MLFLOW_TRACKING_URI."""
    from mlflow.tracking import MlflowClient

    from components.common.tracking.registry import alias_version
    from components.common.tracking.runs import check_reachable, check_store_exists, tracking_uri

    uri = tracking_uri()
    check_store_exists(uri, "segpipe serve-manifest")
    check_reachable(uri)
    version = alias_version(MlflowClient(uri), model, alias)
    if version is None:
        raise ServingRefused(f"{model} has no '{alias}' version: nothing to serve yet")
    return str(version.version)
