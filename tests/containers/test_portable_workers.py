"""Preprocess on Beam's portable runner with its SDK worker in the segpipe-beam image, as a
Flink or Spark runner on Kubernetes starts it from a worker-pool sidecar (the container tier:
`make test-containers` sets SEGPIPE_BEAM_IMAGE and DOCKER_HOST)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from beam_portable import container_worker_pool, job_service, portable_options

IMAGE = os.environ.get("SEGPIPE_BEAM_IMAGE", "")
pytestmark = pytest.mark.skipif(not IMAGE, reason="container tier: make test-containers")
STEP_UID = 10001


@pytest.fixture
def shared(tiny_data: Path, tmp_path: Path) -> Path:
    """A folder the job service (this user) and the workers (uid 10001) share: the inputs,
    with one image that is not an image, and room for the outputs."""
    shared = tmp_path / "shared"
    shutil.copytree(tiny_data, shared / "data")
    sorted((shared / "data" / "images").iterdir())[0].write_bytes(b"not an image")
    (shared / "portable").mkdir()
    for folder in (tmp_path, shared, shared / "portable"):
        folder.chmod(0o777)
    for path in (shared / "data").rglob("*"):  # pytest's folders are 0700: readable by all
        path.chmod(0o755 if path.is_dir() else 0o644)
    (shared / "data").chmod(0o755)
    return shared


def test_preprocess_with_workers_in_the_image_writes_what_the_direct_runner_writes(
    shared, tmp_path
):
    from test_portable_runner import digests, preprocess

    direct = preprocess(shared / "data", tmp_path / "direct")
    with (
        job_service(tmp_path) as job_endpoint,
        container_worker_pool(IMAGE, shared, tmp_path / "pool.log") as pool_endpoint,
    ):
        options = portable_options(job_endpoint, pool_endpoint)
        output = shared / "portable" / "dataset"
        portable = preprocess(
            shared / "data", output, runner="PortableRunner", beam_options=options
        )
    assert portable == direct and direct["rejected"] == 1
    assert digests(output) == digests(tmp_path / "direct")
    shards = list(output.glob("*/*.tfrecord"))
    assert shards and {shard.stat().st_uid for shard in shards} == {STEP_UID}  # the workers'
