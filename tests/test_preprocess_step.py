"""The preprocess CLI on tiny generated data: shards, stats, rejects, layouts, the reject limit."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from components.preprocess.__main__ import main
from components.preprocess.pipeline import TooManyRejects


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
    (masks / "sample_00004.png").write_bytes(b"not an image at all")
    Image.fromarray(np.full((64, 64), 7, np.uint8), "L").save(masks / "sample_00005.png")
    Image.new("RGB", (64, 64), (10, 200, 30)).save(masks / "sample_00006.png")
    return data


def _run(data: Path, output: Path, *flags: str) -> dict:
    # tiny_data's 24 ids all hash to train at the default val_fraction=0.2
    args = ["--data", str(data), "--output", str(output), "--image-height", "32"]
    args += ["--val-fraction", "0.3"]
    assert main([*args, "--image-width", "32", "--direct-running-mode", "in_memory", *flags]) == 0
    return json.loads((output / "stats.json").read_text())


def test_every_bad_input_is_rejected_with_its_reason_and_nothing_is_lost(
    mlflow_store, data_with_bad_inputs, tmp_path
):
    output = tmp_path / "out"
    stats = _run(data_with_bad_inputs, output, "--max-reject-fraction", "1", "--ignore-values", "7")

    rejects = [json.loads(line) for line in (output / "rejects.jsonl").read_text().splitlines()]
    reasons = {r["source_id"]: r["reason"] for r in rejects}
    assert reasons == {
        "sample_00000": "unreadable_image",
        "sample_00001": "size_mismatch",
        "sample_00002": "missing_mask",
        "sample_00003": "label_out_of_range",
        "orphan": "missing_image",
        "sample_00004": "unreadable_mask",
        "sample_00005": "empty_mask",
        "sample_00006": "mask_not_class_index",
    }
    details = {r["source_id"]: r["detail"] for r in rejects}
    assert "sample_00000.png" in details["sample_00000"]
    assert "10x12" in details["sample_00001"]
    assert "[9]" in details["sample_00003"]
    assert stats["rejected"] == 8
    assert stats["rejects_by_reason"]["size_mismatch"] == 1
    assert stats["examples_written"] == 17
    assert stats["inputs"] == 25


def test_too_many_rejects_fail_the_step_after_writing_the_evidence(
    mlflow_store, data_with_bad_inputs, tmp_path
):
    output = tmp_path / "out"
    with pytest.raises(TooManyRejects, match=r"8 of 25 inputs rejected \(32.0% > "):
        _run(data_with_bad_inputs, output)
    assert len((output / "rejects.jsonl").read_text().splitlines()) == 8


def test_shards_hold_every_written_example_resized(mlflow_store, tiny_data, tmp_path):
    import tensorflow as tf

    from components.common.data.schema import decode_example

    output = tmp_path / "out"
    stats = _run(
        tiny_data, output, "--num-shards", "3", "--val-fraction", "0.25", "--test-fraction", "0.25"
    )

    ids, class_pixels = [], np.zeros(4, np.int64)
    for split in ("train", "val", "test"):
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
        assert count > 0
    assert sorted(ids) == [f"sample_{i:05d}" for i in range(24)]
    total = np.sum([s["class_pixels"] for s in stats["splits"].values()], axis=0)
    np.testing.assert_array_equal(total, class_pixels)
    assert stats["splits"]["train"]["image_sizes"] == {
        "64x64": stats["splits"]["train"]["examples"]
    }
    assert json.loads((output / "dataset.json").read_text())["num_classes"] == 4

    table = pq.read_table(output / "stats.parquet").to_pydict()
    assert len(table["split"]) == 3 * 4
    assert sum(table["pixels"]) == int(class_pixels.sum())
    assert "| train |" in (output / "stats.md").read_text()


def test_stats_are_logged_to_mlflow(mlflow_store, tiny_data, tmp_path):
    from mlflow.tracking import MlflowClient

    _run(tiny_data, tmp_path / "out")
    client = MlflowClient(mlflow_store)
    (run,) = client.search_runs(
        [client.get_experiment_by_name("segpipe").experiment_id],
        "tags.`segpipe.step` = 'preprocess'",
    )
    assert run.data.metrics["inputs"] == 24
    assert run.data.params["layout"] == "paired-folders"
    assert {a.path for a in client.list_artifacts(run.info.run_id, "dataset")} >= {
        "dataset/stats.json",
        "dataset/stats.md",
        "dataset/stats.csv",  # the per-class table, previewed by the MLflow UI
        "dataset/rejects.jsonl",
    }
    csv = client.download_artifacts(run.info.run_id, "dataset/stats.csv", str(tmp_path))
    header, *rows = Path(csv).read_text().splitlines()
    assert header.startswith('"split","class_id","class_name","pixels"') and len(rows) == 3 * 4


def test_missing_folder_is_a_clear_error(mlflow_store, tmp_path):
    with pytest.raises(FileNotFoundError, match="no images found under"):
        _run(tmp_path / "nowhere", tmp_path / "out")


@pytest.mark.slow  # a second Beam run, on worker processes
def test_output_files_are_deterministic(mlflow_store, tiny_data, tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    _run(tiny_data, first, "--num-shards", "2")
    _run(tiny_data, second, "--num-shards", "2", "--direct-running-mode", "multi_processing")
    shards = sorted(p.relative_to(first) for p in first.rglob("*.tfrecord"))
    assert len(shards) == 2 * 3
    for shard in shards:
        assert (first / shard).read_bytes() == (second / shard).read_bytes(), shard


def _binary_data(root: Path, count: int = 12, edge_values: tuple[int, ...] = ()) -> Path:
    """Images with 0/255 masks (a square), optionally anti-aliased with `edge_values`."""
    rng = np.random.default_rng(5)
    for folder in ("images", "masks"):
        (root / folder).mkdir(parents=True)
    for index in range(count):
        mask = np.zeros((32, 32), np.uint8)
        top, left = rng.integers(4, 16, size=2)
        mask[top : top + 12, left : left + 12] = 255
        for offset, value in enumerate(edge_values):  # an edge row of in-between values
            mask[top - 1 - offset, left : left + 12] = value
        image = rng.integers(0, 255, size=(32, 32, 3), dtype=np.uint8)
        Image.fromarray(image).save(root / "images" / f"{index:03d}.png")
        Image.fromarray(mask).save(root / "masks" / f"{index:03d}.png")
    return root


@pytest.mark.parametrize("edge_values", [(), (1,), (1, 128, 64)])
def test_0_255_masks_read_as_class_indices_stop_the_step_with_the_binary_hint(
    mlflow_store, tmp_path, edge_values
):
    from components.preprocess.checks import UnusableLabels

    data = _binary_data(tmp_path / "data", edge_values=edge_values)
    output = tmp_path / "out"
    with pytest.raises(UnusableLabels, match="look like 0/255 binary masks.*mask_encoding=binary"):
        _run(data, output)  # default settings
    stats = json.loads((output / "stats.json").read_text())  # the evidence is written first
    assert stats["mask_values"]["255"] == 12 * 12 * 12
    stats = _run(data, tmp_path / "binary", "--num-classes", "2", "--mask-encoding", "binary")
    assert stats["rejected"] == 0 and stats["splits"]["train"]["class_pixels"][1] > 0


def test_a_class_with_no_train_pixels_fails_the_step_naming_it(mlflow_store, tiny_data, tmp_path):
    from components.preprocess.checks import UnusableLabels

    names = "background,circle,square,triangle,star"
    with pytest.raises(UnusableLabels, match=r"no train pixels of class 4 \(star\)"):
        _run(tiny_data, tmp_path / "out", "--num-classes", "5", "--class-names", names)
    stats = _run(
        tiny_data, tmp_path / "allowed", "--num-classes", "5", "--allow-empty-train-classes", "true"
    )
    assert stats["splits"]["train"]["class_pixels"][4] == 0


def test_odd_names_formats_and_files_are_rejects_and_counted(mlflow_store, tiny_data, tmp_path):
    import os

    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    latin1 = os.fsdecode(b"caf\xe9")
    shutil.copy(data / "images" / "sample_00000.png", data / "images" / f"{latin1}.png")
    shutil.copy(data / "masks" / "sample_00000.png", data / "masks" / f"{latin1}.png")
    (data / "images" / "sample_00001.png").unlink()
    (data / "images" / "sample_00001.png").mkdir()
    (data / "images" / "sample_00002.png").unlink()
    (data / "images" / "sample_00002.png").symlink_to("sample_00002.png")
    (data / "images" / "notes.txt").write_text("not an image")
    (data / "images" / "sample_00003.png").write_bytes(b"")
    (data / "masks" / "sample_00004.png").unlink()
    output = tmp_path / "out"

    stats = _run(data, output, "--max-reject-fraction", "1")

    rejects = [json.loads(line) for line in (output / "rejects.jsonl").read_text().splitlines()]
    by_id = {r["source_id"]: r for r in rejects}
    assert {key: r["reason"] for key, r in by_id.items()} == {
        "caf\\xe9": "non_utf8_name",
        "sample_00001": "not_a_file",
        "sample_00002": "not_a_file",
        "notes.txt": "unsupported_format",
        "sample_00003": "unreadable_image",
        "sample_00004": "missing_mask",
    }
    assert by_id["caf\\xe9"]["image"] == str(data / "images" / "caf\\xe9.png")
    assert by_id["sample_00003"]["detail"].endswith("empty file (0 bytes)")
    assert str(data / "masks") in by_id["sample_00004"]["detail"]
    assert stats["inputs"] == 24 + 2 and stats["examples_written"] == 24 - 4


def test_split_fractions_are_refused_before_any_work(mlflow_store, tiny_data, tmp_path):
    output = tmp_path / "out"
    with pytest.raises(SystemExit) as refused:
        _run(tiny_data, output, "--val-fraction", "1.5")
    assert "val_fraction must be in [0, 1), got 1.5" in str(refused.value.code)
    assert not output.exists()


def test_an_empty_val_split_fails_at_preprocess_naming_the_split_settings(
    mlflow_store, tiny_data, tmp_path
):
    from components.preprocess.checks import UnusableSplits

    data = tmp_path / "three"
    for sub in ("images", "masks"):
        (data / sub).mkdir(parents=True)
        for name in sorted((tiny_data / sub).iterdir())[:3]:
            shutil.copy(name, data / sub / name.name)
    with pytest.raises(UnusableSplits) as refused:
        _run(data, tmp_path / "out", "--val-fraction", "0.05")
    message = str(refused.value)
    assert message.startswith("the val split is empty (train 3, val 0")
    assert "val_fraction=0.05 and test_fraction=0.0" in message


@pytest.mark.parametrize(
    ("step", "args", "reason"),
    [
        ("preprocess", ["--data", "{tmp}/nope", "--output", "{tmp}/out"], "no images found"),
        ("train", ["--dataset", "{tmp}/nope", "--model-dir", "{tmp}/m"], "No such file"),
    ],
)
def test_step_clis_end_an_expected_error_with_one_line_and_no_traceback(
    tmp_path, step, args, reason
):
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]
    argv = [a.format(tmp=tmp_path) for a in args]
    env = {**__import__("os").environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/m.db"}
    done = subprocess.run(
        [sys.executable, "-m", f"components.{step}", *argv],
        cwd=repo,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"python -m components.{step} failed: ") and reason in last
    trace = last.rsplit("(traceback: ", 1)[1].rstrip(")")
    assert "Traceback (most recent call last)" in Path(trace).read_text()


def test_every_file_under_the_data_root_is_an_input_a_reject_or_ignored_with_its_rule(
    mlflow_store, tiny_data, tmp_path
):
    """Sub-folders of images/ are not read: their files are listed as ignored, with the rule,
    beside hidden names and files outside images/ and masks/."""
    from components.common.data.sources import list_sources
    from components.common.data.unused_files import list_ignored
    from components.common.settings.config import PreprocessConfig
    from components.snapshot.snapshot import list_data

    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    (data / "images" / "extra").mkdir()
    shutil.copy(data / "images" / "sample_00000.png", data / "images" / "extra" / "more.png")
    (data / "images" / ".DS_Store").write_bytes(b"finder")
    (data / "README.txt").write_text("about the data")
    output = tmp_path / "out"
    stats = _run(data, output)
    ignored = [json.loads(line) for line in (output / "ignored.jsonl").read_text().splitlines()]
    rules = {Path(item["path"]).relative_to(data).as_posix(): item["rule"] for item in ignored}
    assert set(rules) == {"images/extra/more.png", "images/.DS_Store", "README.txt"}
    assert rules["images/extra/more.png"].startswith("in a sub-folder of images/")
    assert rules["images/.DS_Store"].startswith("hidden name")
    assert rules["README.txt"].startswith("outside images/ and masks/")
    # nothing lost: every file is an input's image or mask, or ignored
    files = [p for p in data.rglob("*") if p.is_file()]
    assert len(files) == 2 * stats["inputs"] + len(ignored)
    # the snapshot accounts for the same files the same way
    config = PreprocessConfig(val_fraction=0.3)
    rows, listed = list_data(str(data), config)
    assert [i.path for i in listed] == [
        i.path for i in list_ignored(str(data), config, list_sources(str(data), config))
    ]
    assert len(rows) == stats["inputs"] and len(listed) == 3


def test_a_relative_data_root_counts_nothing_as_ignored(tiny_data, tmp_path, monkeypatch):
    from components.common.data.unused_files import list_inputs
    from components.common.settings.config import PreprocessConfig

    shutil.copytree(tiny_data, tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    for spelling in ("data", "./data", "./data/", "data/../data"):
        pairs, ignored = list_inputs(spelling, PreprocessConfig())
        assert len(pairs) == 24 and ignored == [], spelling
