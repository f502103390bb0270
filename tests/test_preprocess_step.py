"""The preprocess CLI on tiny generated data, with planted bad inputs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from components.preprocess.__main__ import main


@pytest.fixture
def data_with_bad_inputs(tiny_data: Path, tmp_path: Path) -> Path:
    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    images, masks = data / "images", data / "masks"
    truncated = (images / "sample_00000.png").read_bytes()
    (images / "sample_00000.png").write_bytes(truncated[: len(truncated) // 2])
    Image.new("L", (10, 12)).save(masks / "sample_00001.png")
    (masks / "sample_00002.png").unlink()
    Image.fromarray(np.full((64, 64), 9, np.uint8), "L").save(masks / "sample_00003.png")
    Image.new("L", (64, 64)).save(masks / "orphan.png")
    return data


def _run(data: Path, output: Path, *flags: str) -> dict:
    args = ["--data", str(data), "--output", str(output), "--image-height", "32"]
    assert main([*args, "--image-width", "32", "--direct-running-mode", "in_memory", *flags]) == 0
    return json.loads((output / "stats.json").read_text())


def test_bad_inputs_are_rejected_with_reasons_and_nothing_is_lost(data_with_bad_inputs, tmp_path):
    output = tmp_path / "out"
    stats = _run(data_with_bad_inputs, output)

    rejects = [json.loads(line) for line in (output / "rejects.jsonl").read_text().splitlines()]
    reasons = {r["source_id"]: r["reason"] for r in rejects}
    assert reasons == {
        "sample_00000": "unreadable_image",
        "sample_00001": "size_mismatch",
        "sample_00002": "missing_mask",
        "sample_00003": "label_out_of_range",
        "orphan": "missing_image",
    }
    assert all(r["detail"] for r in rejects)
    assert (
        "sample_00000.png" in next(r for r in rejects if r["source_id"] == "sample_00000")["detail"]
    )
    assert stats["rejected"] == 5
    assert stats["examples_written"] == 20
    assert stats["inputs"] == 25


def test_shards_hold_every_written_example_resized(tiny_data, tmp_path):
    import tensorflow as tf

    from components.common.schema import decode_example

    output = tmp_path / "out"
    stats = _run(tiny_data, output, "--num-shards", "3", "--val-fraction", "0.25")

    ids, class_pixels = [], np.zeros(4, np.int64)
    for split in ("train", "val"):
        files = sorted((output / split).glob(f"{split}-*-of-00003.tfrecord"))
        assert len(files) == 3
        count = 0
        for record in tf.data.TFRecordDataset([str(f) for f in files]):
            example = decode_example(record)
            assert example["image"].shape == (32, 32, 3)
            assert example["mask"].shape == (32, 32, 1)
            class_pixels += np.bincount(example["mask"].numpy().ravel(), minlength=4)
            ids.append(example["source_id"].numpy().decode())
            count += 1
        assert count == stats["splits"][split]["examples"]
    assert sorted(ids) == [f"sample_{i:05d}" for i in range(24)]
    total = np.sum([stats["splits"][s]["class_pixels"] for s in ("train", "val")], axis=0)
    np.testing.assert_array_equal(total, class_pixels)
    assert json.loads((output / "dataset.json").read_text())["num_classes"] == 4


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no images found under"):
        _run(tmp_path / "nowhere", tmp_path / "out")
