"""gs:// input and output through Beam's IO, against gcp-storage-emulator on 127.0.0.1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # Beam against the GCS emulator


def test_preprocess_reads_and_writes_gs_paths(gcs, mlflow_store, tiny_data: Path):
    from components.preprocess.__main__ import main

    bucket = gcs.bucket("segpipe-test")
    for path in sorted(tiny_data.rglob("*.png")):
        bucket.blob(f"raw/{path.relative_to(tiny_data)}").upload_from_filename(str(path))

    args = ["--data", "gs://segpipe-test/raw", "--output", "gs://segpipe-test/out"]
    args += ["--image-height", "32", "--image-width", "32", "--num-shards", "2"]
    args += ["--val-fraction", "0.3"]  # tiny_data's 24 ids all hash to train at 0.2
    assert main([*args, "--direct-running-mode", "in_memory"]) == 0

    stats = json.loads(bucket.blob("out/stats.json").download_as_text())
    assert stats["examples_written"] == 24 and stats["rejected"] == 0
    names = {blob.name for blob in gcs.list_blobs("segpipe-test", prefix="out/")}
    assert "out/train/train-00000-of-00002.tfrecord" in names
    assert {"out/dataset.json", "out/stats.parquet", "out/stats.md", "out/rejects.jsonl"} <= names
    assert bucket.blob("out/ignored.jsonl").download_as_text() == ""  # every file an input
