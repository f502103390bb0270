"""The data a registered model version was trained on, and what differs between two versions."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass

from components.common.data.manifest import ManifestRow, manifest_sha256, read_manifest
from components.common.data.manifest_diff import ManifestDiff, diff_manifests
from components.common.tracking.lineage import (
    DATA_FINGERPRINT_TAG,
    MANIFEST_SHA256_TAG,
    MANIFEST_URI_TAG,
)


@dataclass(frozen=True)
class VersionData:
    """A version's manifest, found through its tags and checked against its recorded digest."""

    model_name: str
    version: str
    manifest_uri: str
    manifest_sha256: str
    data_fingerprint: str
    rows: list[ManifestRow]


def version_data(client, model_name: str, version: str) -> VersionData:
    """The manifest `model_name` `version` was trained on.

    Raises LookupError when the version does not exist or records no manifest (trained before
    snapshots), ValueError when the manifest found is not the one recorded (its digest differs).
    """
    from mlflow.exceptions import MlflowException

    try:
        found = client.get_model_version(model_name, str(version))
    except MlflowException as error:
        raise LookupError(f"{model_name} version {version} does not exist: {error}") from error
    tags = found.tags or {}
    uri = tags.get(MANIFEST_URI_TAG)
    if not uri:
        raise LookupError(
            f"{model_name} version {version} records no manifest (tag {MANIFEST_URI_TAG}): "
            "it was trained before segpipe took data snapshots"
        )
    rows = _download_manifest(uri)
    recorded = tags.get(MANIFEST_SHA256_TAG, "")
    actual = manifest_sha256(rows)
    if actual != recorded:
        raise ValueError(
            f"the manifest at {uri} has sha256 {actual}, but {model_name} version {version} "
            f"recorded {recorded or 'none'}: it is not the manifest that version was trained on"
        )
    return VersionData(
        model_name, str(version), uri, actual, tags.get(DATA_FINGERPRINT_TAG, ""), rows
    )


def _download_manifest(uri: str) -> list[ManifestRow]:
    import mlflow

    with tempfile.TemporaryDirectory(prefix="segpipe-manifest-") as folder:
        return read_manifest(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=folder))


def diff_versions(
    client, model_name: str, old: str, new: str
) -> tuple[VersionData, VersionData, ManifestDiff]:
    """Both versions' data and what `new`'s adds, removes and changes relative to `old`'s."""
    before = version_data(client, model_name, old)
    after = version_data(client, model_name, new)
    return before, after, diff_manifests(before.rows, after.rows)
