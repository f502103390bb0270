"""Versioned exports: local folders and gs:// (gcp-storage-emulator), `_SUCCESS` last."""

from __future__ import annotations

from pathlib import Path

import pytest

from components.publish.export import SUCCESS_MARKER, export_version


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    """A stand-in SavedModel folder: the export copies files, it does not load them."""
    folder = tmp_path / "model"
    (folder / "variables").mkdir(parents=True)
    (folder / "saved_model.pb").write_bytes(b"graph")
    (folder / "variables" / "variables.index").write_bytes(b"index")
    return folder


def _names(gcs, prefix: str) -> set[str]:
    return {blob.name for blob in gcs.list_blobs("segpipe-test", prefix=prefix)}


def test_gcs_export_copies_everything_then_marks_success(gcs, model_dir):
    card = {"MODEL_CARD.md": "# card"}
    path = export_version(str(model_dir), "gs://segpipe-test/root", "m", "3", card)
    assert path == "gs://segpipe-test/root/m/3"
    assert _names(gcs, "root/") == {
        "root/m/3/saved_model.pb",
        "root/m/3/variables/variables.index",
        "root/m/3/MODEL_CARD.md",
        f"root/m/3/{SUCCESS_MARKER}",
    }  # and nothing left under the temporary prefix
    bucket = gcs.bucket("segpipe-test")
    assert bucket.blob("root/m/3/MODEL_CARD.md").download_as_text() == "# card"
    assert bucket.blob("root/m/3/variables/variables.index").download_as_bytes() == b"index"


def test_gcs_export_is_idempotent_and_never_rewrites_a_finished_version(gcs, model_dir):
    export_version(str(model_dir), "gs://segpipe-test", "m", "1")
    (model_dir / "saved_model.pb").write_bytes(b"changed")
    export_version(str(model_dir), "gs://segpipe-test", "m", "1")
    blob = gcs.bucket("segpipe-test").blob("m/1/saved_model.pb")
    assert blob.download_as_bytes() == b"graph"


def test_gcs_export_that_fails_midway_leaves_no_success_marker(gcs, model_dir, monkeypatch):
    from google.cloud.storage import Bucket

    real_copy = Bucket.copy_blob
    calls = []

    def flaky_copy(self, blob, destination, new_name, *args, **kwargs):
        calls.append(new_name)
        if len(calls) == 2:
            raise ConnectionError("network went away")
        return real_copy(self, blob, destination, new_name, *args, **kwargs)

    monkeypatch.setattr(Bucket, "copy_blob", flaky_copy)
    with pytest.raises(ConnectionError):
        export_version(str(model_dir), "gs://segpipe-test", "m", "2")
    assert f"m/2/{SUCCESS_MARKER}" not in _names(gcs, "m/")
    assert _names(gcs, "m/2/")  # a partial version exists, but is not marked finished

    monkeypatch.setattr(Bucket, "copy_blob", real_copy)
    export_version(str(model_dir), "gs://segpipe-test", "m", "2")  # the retry completes it
    assert {f"m/2/{SUCCESS_MARKER}", "m/2/saved_model.pb"} <= _names(gcs, "m/2/")
    assert not _names(gcs, ".staging/")  # the crashed attempt's staging copy is gone too


def test_local_export_writes_extra_files_and_marker(tmp_path, model_dir):
    path = Path(export_version(str(model_dir), str(tmp_path / "exports"), "m", "1", {"A.md": "a"}))
    assert path == tmp_path / "exports" / "m" / "1"
    assert (path / "A.md").read_text() == "a" and (path / SUCCESS_MARKER).exists()
    assert not list((tmp_path / "exports" / ".staging").iterdir())


def test_a_staged_version_is_invisible_until_committed_and_discard_removes_it(tmp_path, model_dir):
    from components.publish.export import commit, discard, stage_version

    root = tmp_path / "exports"
    staged = stage_version(str(model_dir), str(root), "m", "1", {"A.md": "a"})
    assert not (root / "m").exists()  # nothing under the published path yet
    assert (Path(staged.staging) / SUCCESS_MARKER).exists()
    discard(staged)
    assert not Path(staged.staging).exists() and not (root / "m").exists()
    staged = stage_version(str(model_dir), str(root), "m", "1")
    assert Path(commit(staged)) == root / "m" / "1"
    assert (root / "m" / "1" / SUCCESS_MARKER).exists()


def test_gcs_staged_version_is_invisible_until_committed(gcs, model_dir):
    from components.publish.export import discard, stage_version

    staged = stage_version(str(model_dir), "gs://segpipe-test/root", "m", "4")
    assert not _names(gcs, "root/m/")
    assert f"{staged.staging.removeprefix('gs://segpipe-test/')}/{SUCCESS_MARKER}" in _names(
        gcs, "root/.staging/"
    )
    discard(staged)
    assert not _names(gcs, "root/")


def test_other_remote_schemes_are_refused(model_dir):
    with pytest.raises(ValueError, match="local paths or gs://"):
        export_version(str(model_dir), "s3://bucket/exports", "m", "1")
