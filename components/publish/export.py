"""Versioned exports at `<export_root>/<model>/<version>/` (local or gs://), staged first.

A version is copied complete (with `_SUCCESS`) under `<export_root>/.staging/`, outside the
published path, and moved into place only once it is champion: TF Serving and KServe serve
every numbered folder under `<export_root>/<model>/`, so a refused model never gets one.
"""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass

SUCCESS_MARKER = "_SUCCESS"
STAGING_FOLDER = ".staging"


@dataclass(frozen=True)
class StagedExport:
    """A version's files waiting in `staging` for `target`; `staging` is "" when `target`
    is already complete (a version exported earlier is never rewritten)."""

    staging: str
    target: str


def export_version(
    model_dir: str,
    export_root: str,
    model_name: str,
    version: str,
    extra_files: dict[str, str] | None = None,
) -> str:
    """Copy `model_dir` (plus `extra_files`: name -> text) to its versioned folder at once."""
    return commit(stage_version(model_dir, export_root, model_name, version, extra_files))


def stage_version(
    model_dir: str,
    export_root: str,
    model_name: str,
    version: str,
    extra_files: dict[str, str] | None = None,
) -> StagedExport:
    """Copy the version, complete with `_SUCCESS`, to a staging folder outside the published
    path; `commit` moves it into place, `discard` removes it."""
    extra, version = extra_files or {}, str(version)
    if export_root.startswith("gs://"):
        return _stage_gcs(model_dir, export_root, model_name, version, extra)
    if "://" in export_root:
        raise ValueError(f"export roots are local paths or gs://, not {export_root}")
    return _stage_local(model_dir, export_root, model_name, version, extra)


def commit(staged: StagedExport) -> str:
    """Move a staged version into its published folder; returns that folder."""
    if staged.staging:
        if staged.target.startswith("gs://"):
            _commit_gcs(staged)
        else:
            shutil.rmtree(staged.target, ignore_errors=True)  # a crashed attempt's, unmarked
            os.makedirs(os.path.dirname(staged.target), exist_ok=True)
            os.replace(staged.staging, staged.target)
    return staged.target


def discard(staged: StagedExport) -> None:
    """Remove a staged version that will not be published."""
    if not staged.staging:
        return
    if staged.staging.startswith("gs://"):
        for blob in _blobs(staged.staging):
            blob.delete()
    else:
        shutil.rmtree(staged.staging, ignore_errors=True)


def _write_files(model_dir: str, extra: dict[str, str]):
    """(relative name, local path or None, text or None) of everything a version holds."""
    for directory, _, files in os.walk(model_dir):
        for name in sorted(files):
            path = os.path.join(directory, name)
            yield os.path.relpath(path, model_dir).replace(os.sep, "/"), path, None
    for name, text in extra.items():
        yield name, None, text
    yield SUCCESS_MARKER, None, ""


def _stage_local(
    model_dir: str, export_root: str, model_name: str, version: str, extra: dict[str, str]
) -> StagedExport:
    root = os.path.abspath(export_root)
    target = os.path.join(root, model_name, version)
    if os.path.exists(os.path.join(target, SUCCESS_MARKER)):
        return StagedExport("", target)
    staging_root = os.path.join(root, STAGING_FOLDER)
    _remove_local_stale(staging_root, f"{model_name}-{version}-")
    staging = os.path.join(staging_root, f"{model_name}-{version}-{uuid.uuid4().hex}")
    for relative, path, text in _write_files(model_dir, extra):
        destination = os.path.join(staging, relative)
        os.makedirs(os.path.dirname(destination), exist_ok=True)
        if path is not None:
            shutil.copy2(path, destination)
        else:
            with open(destination, "w", encoding="utf-8") as handle:
                handle.write(text)
    return StagedExport(staging, target)


def _remove_local_stale(staging_root: str, prefix: str) -> None:
    """Staging folders of this version left by a crashed attempt: nobody trusts them."""
    if os.path.isdir(staging_root):
        for name in os.listdir(staging_root):
            if name.startswith(prefix):
                shutil.rmtree(os.path.join(staging_root, name), ignore_errors=True)


def _split(uri: str) -> tuple[str, str]:
    bucket, _, path = uri.removeprefix("gs://").partition("/")
    return bucket, path.strip("/")


def _blobs(uri: str):
    from components.common.storage import gcs_client

    bucket, prefix = _split(uri)
    return list(gcs_client().list_blobs(bucket, prefix=f"{prefix}/" if prefix else None))


def _stage_gcs(
    model_dir: str, export_root: str, model_name: str, version: str, extra: dict[str, str]
) -> StagedExport:
    """Upload under `.staging/`; GCS has no rename, so `commit` copies server-side, `_SUCCESS`
    last, and readers that wait for `_SUCCESS` never see a partial folder."""
    from components.common.storage import gcs_client

    bucket_name, root = _split(export_root)
    target = f"gs://{'/'.join(p for p in (bucket_name, root, model_name, version) if p)}"
    bucket = gcs_client().bucket(bucket_name)
    if bucket.blob(f"{_split(target)[1]}/{SUCCESS_MARKER}").exists():
        return StagedExport("", target)
    staging_root = "/".join(p for p in (root, STAGING_FOLDER) if p)
    for stale in gcs_client().list_blobs(
        bucket_name, prefix=f"{staging_root}/{model_name}-{version}-"
    ):
        stale.delete()
    staging = f"{staging_root}/{model_name}-{version}-{uuid.uuid4().hex}"
    for relative, path, text in _write_files(model_dir, extra):
        blob = bucket.blob(f"{staging}/{relative}")
        if path is not None:
            blob.upload_from_filename(path)
        else:
            blob.upload_from_string(text.encode("utf-8"))
    return StagedExport(f"gs://{bucket_name}/{staging}", target)


def _commit_gcs(staged: StagedExport) -> None:
    from components.common.storage import gcs_client

    bucket_name, final = _split(staged.target)
    bucket = gcs_client().bucket(bucket_name)
    for stale in gcs_client().list_blobs(bucket_name, prefix=f"{final}/"):
        stale.delete()  # a crashed attempt's partial copy, never marked finished
    blobs = _blobs(staged.staging)
    staging_prefix = _split(staged.staging)[1]
    marker = None
    for blob in blobs:
        relative = blob.name.removeprefix(f"{staging_prefix}/")
        if relative == SUCCESS_MARKER:
            marker = blob
            continue
        bucket.copy_blob(blob, bucket, f"{final}/{relative}")
    if marker is not None:
        bucket.copy_blob(marker, bucket, f"{final}/{SUCCESS_MARKER}")
    for blob in blobs:
        blob.delete()
