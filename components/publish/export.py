"""Copy a SavedModel to `<export_root>/<model>/<version>/` (local or gs://), `_SUCCESS` last."""

from __future__ import annotations

import os
import shutil
import uuid

SUCCESS_MARKER = "_SUCCESS"


def export_version(
    model_dir: str,
    export_root: str,
    model_name: str,
    version: str,
    extra_files: dict[str, str] | None = None,
) -> str:
    """Copy `model_dir` (plus `extra_files`: name -> text) to its versioned folder.

    Readers trust only folders with `_SUCCESS`; a folder that has it is never rewritten, so
    publishing is idempotent.
    """
    if export_root.startswith("gs://"):
        return _export_gcs(model_dir, export_root, model_name, str(version), extra_files or {})
    if "://" in export_root:
        raise ValueError(f"export roots are local paths or gs://, not {export_root}")
    return _export_local(model_dir, export_root, model_name, str(version), extra_files or {})


def _export_local(
    model_dir: str, export_root: str, model_name: str, version: str, extra: dict[str, str]
) -> str:
    target = os.path.join(os.path.abspath(export_root), model_name, version)
    if os.path.exists(os.path.join(target, SUCCESS_MARKER)):
        return target
    staging = f"{target}.tmp-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(model_dir, staging)
    for name, text in extra.items():
        with open(os.path.join(staging, name), "w", encoding="utf-8") as handle:
            handle.write(text)
    shutil.rmtree(target, ignore_errors=True)  # a half-written folder from a crashed attempt
    os.replace(staging, target)
    with open(os.path.join(target, SUCCESS_MARKER), "w"):
        pass
    return target


def _export_gcs(
    model_dir: str, export_root: str, model_name: str, version: str, extra: dict[str, str]
) -> str:
    """Upload under a temporary prefix, copy into place, then write `_SUCCESS`.

    GCS has no rename: the copy is server-side, and readers that wait for `_SUCCESS` never
    see a partial folder.
    """
    from google.cloud import storage

    bucket_name, _, root = export_root.removeprefix("gs://").partition("/")
    root = root.strip("/")
    final = "/".join(p for p in (root, model_name, version) if p)
    temporary = "/".join(p for p in (root, model_name, f".tmp-{version}-") if p)
    staging = f"{temporary}{uuid.uuid4().hex}"
    client = storage.Client()
    bucket = client.bucket(bucket_name)
    if bucket.blob(f"{final}/{SUCCESS_MARKER}").exists():
        return f"gs://{bucket_name}/{final}"
    for prefix in (f"{final}/", temporary):  # left by a crashed attempt; nobody trusts them
        for stale in client.list_blobs(bucket_name, prefix=prefix):
            stale.delete()
    uploaded = []
    for directory, _, files in os.walk(model_dir):
        for name in sorted(files):
            path = os.path.join(directory, name)
            relative = os.path.relpath(path, model_dir).replace(os.sep, "/")
            blob = bucket.blob(f"{staging}/{relative}")
            blob.upload_from_filename(path)
            uploaded.append((blob, relative))
    for name, text in extra.items():
        blob = bucket.blob(f"{staging}/{name}")
        blob.upload_from_string(text.encode("utf-8"), content_type="text/markdown")
        uploaded.append((blob, name))
    for blob, relative in uploaded:
        bucket.copy_blob(blob, bucket, f"{final}/{relative}")
    for blob, _ in uploaded:
        blob.delete()
    bucket.blob(f"{final}/{SUCCESS_MARKER}").upload_from_string(b"")
    return f"gs://{bucket_name}/{final}"
