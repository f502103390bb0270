"""components.common.storage on local paths and on gs:// (gcp-storage-emulator), without Beam."""

from __future__ import annotations

from pathlib import Path

import pytest

from components.common import storage

FILES = ("a/x.png", "a/y.jpg", "a/sub/z.png", "b/x.png", "top.txt")


def _expected(root: str, names: list[str]) -> list[str]:
    return sorted(storage.join(root, name) for name in names)


def _check_storage(root: str) -> None:
    """The same behaviour under a local folder and a gs:// prefix."""
    for name in FILES:
        storage.write_json(storage.join(root, name), {"name": name})
    assert storage.read_json(storage.join(root, "a/sub/z.png")) == {"name": "a/sub/z.png"}
    assert storage.exists(storage.join(root, "b/x.png"))
    assert not storage.exists(storage.join(root, "b/none.png"))

    assert storage.glob(storage.join(root, "a/*")) == _expected(root, ["a/x.png", "a/y.jpg"])
    assert storage.glob(storage.join(root, "*/x.png")) == _expected(root, ["a/x.png", "b/x.png"])
    assert storage.glob(storage.join(root, "a/**.png")) == _expected(
        root, ["a/sub/z.png", "a/x.png"]
    )
    assert storage.glob(storage.join(root, "a/[xy].*")) == _expected(root, ["a/x.png", "a/y.jpg"])
    assert storage.glob(storage.join(root, "a/[!x].*")) == _expected(root, ["a/y.jpg"])
    assert storage.glob(storage.join(root, "top.txt")) == _expected(root, ["top.txt"])
    assert storage.glob(storage.join(root, "a")) == []  # a folder is not a file
    assert storage.glob(storage.join(root, "missing/*")) == []
    with pytest.raises(FileNotFoundError, match="none.json"):
        storage.read_text(storage.join(root, "none.json"))


def test_local_paths(tmp_path: Path):
    _check_storage(str(tmp_path / "root"))


def test_gcs_paths(gcs):
    _check_storage("gs://segpipe-test/root")
    blob = gcs.bucket("segpipe-test").blob("root/a/x.png")
    assert blob.download_as_text().startswith("{")  # written where a gs:// reader finds it


def test_join_keeps_gs_urls_intact():
    assert storage.join("gs://b/data/", "images", "x.png") == "gs://b/data/images/x.png"
    assert storage.join("gs://b", "x") == "gs://b/x"


def test_other_schemes_are_refused_by_name():
    with pytest.raises(ValueError, match="s3://b/x.json: only local paths and gs:// URLs"):
        storage.read_text("s3://b/x.json")
