"""Preprocess through Beam's portable runner, the contract Flink and Spark runners use: the job
goes to a job service process, its SDK workers run in an external worker pool process. The
outputs must be byte-identical to the DirectRunner's."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
from beam_portable import job_service, portable_options, process_worker_pool


def digests(folder: Path) -> dict[str, str]:
    """sha256 of every file under `folder`, by relative path."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


@pytest.fixture(scope="module")
def data_with_bad_inputs(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tiny_data with one image that is not an image and one mask gone: two rejects."""
    data = tmp_path_factory.mktemp("portable") / "data"
    shutil.copytree(tiny_data, data)
    images = sorted((data / "images").iterdir())
    images[0].write_bytes(b"not an image")
    (data / "masks" / images[1].name).unlink()
    return data


def preprocess(data: Path, output: Path, **settings: object) -> dict:
    from components.common.settings.config import PreprocessConfig
    from components.preprocess.pipeline import run_preprocess

    config = PreprocessConfig(
        image_height=32,
        image_width=32,
        val_fraction=0.4,
        num_shards=2,
        max_reject_fraction=0.2,
        **settings,
    )
    return run_preprocess(str(data), str(output), config).stats


def test_preprocess_on_the_portable_runner_writes_what_the_direct_runner_writes(
    data_with_bad_inputs, tmp_path
):
    direct = preprocess(data_with_bad_inputs, tmp_path / "direct")
    with (
        job_service(tmp_path) as job_endpoint,
        process_worker_pool(tmp_path / "pool.log") as pool_endpoint,
    ):
        options = portable_options(job_endpoint, pool_endpoint)
        portable = preprocess(
            data_with_bad_inputs,
            tmp_path / "portable",
            runner="PortableRunner",
            beam_options=options,
        )
    assert portable == direct and direct["rejected"] == 2
    assert digests(tmp_path / "portable") == digests(tmp_path / "direct")
    started = (tmp_path / "pool.log").read_text().count("Starting worker with command")
    assert started == 1  # the pool, not the job service, ran the SDK worker
