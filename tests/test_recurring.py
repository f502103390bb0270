"""A weekly schedule simulated with kfp.local: skip unchanged data, report what changed, drift."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pipelines.cli.main import main

pytestmark = pytest.mark.slow

TINY = {
    "image_height": 32,
    "image_width": 32,
    "epochs": 1,
    "unet_width": 4,
    "unet_depth": 2,
    "batch_size": 8,
    "val_fraction": 0.4,
    "direct_running_mode": "in_memory",
    "min_mean_iou": 0.0,
    "max_drop": 1.0,  # each retraining publishes: the test is about the data, not the scores
    "skip_unchanged": True,  # what `segpipe schedule` sets
}


def _run(data: Path, workdir: Path, capsys, **params: object) -> str:
    args = ["run", "--data", str(data), "--workdir", str(workdir)]
    for name, value in {**TINY, **params}.items():
        args += ["--param", f"{name}={str(value).lower() if isinstance(value, bool) else value}"]
    assert main(args) == 0
    return capsys.readouterr().out


def _line(out: str, label: str) -> str:
    return next(line for line in out.splitlines() if line.startswith(f"  {label}:"))


def _add_pairs(data: Path, count: int) -> None:
    from pipelines.sample_data import write_sample_data

    extra = data.parent / "extra"
    write_sample_data(str(extra), count=count, seed=11, size=64)
    for kind in ("images", "masks"):
        for path in (extra / kind).iterdir():
            shutil.copy(path, data / kind / f"new_{path.name}")


def _step_runs(client, pipeline_run_id: str) -> set[str]:
    from components.common.tracking.runs import PIPELINE_RUN_TAG, STEP_TAG

    runs = client.search_runs(
        [client.get_experiment_by_name("segpipe").experiment_id],
        filter_string=f"tags.`{PIPELINE_RUN_TAG}` = '{pipeline_run_id}'",
    )
    return {run.data.tags.get(STEP_TAG) for run in runs} - {None}


def test_a_schedule_skips_unchanged_data_reports_what_changed_and_stops_a_shifted_class_mix(
    mlflow_store, tiny_data: Path, tmp_path: Path, capsys
):
    import numpy as np
    from mlflow.tracking import MlflowClient
    from PIL import Image

    from components.common.tracking.lineage import OUTCOME_TAG, SKIPPED_TAG, UNCHANGED_OUTCOME
    from components.common.tracking.runs import PIPELINE_RUN_TAG

    client = MlflowClient(mlflow_store)
    data = tmp_path / "bucket"
    shutil.copytree(tiny_data, data)

    def versions() -> list[str]:
        found = client.search_model_versions("name = 'segpipe-unet'")
        return sorted(str(v.version) for v in found)

    # week 1: no champion yet, everything is new
    first = _run(data, tmp_path, capsys)
    assert "No champion yet: 24 inputs, all new." in _line(first, "data")
    assert _line(first, "registered") == "  registered: version 1"

    # week 2: nothing changed: the run ends after the snapshot, no new version
    second = _run(data, tmp_path, capsys)
    assert _line(second, "status") == f"  status:     {UNCHANGED_OUTCOME}"
    assert "Unchanged since segpipe-unet version 1: nothing to do" in _line(second, "data")
    assert "registered: nothing (no new version)" in second
    snapshot_line = next(line for line in second.splitlines() if "  snapshot    done" in line)
    assert snapshot_line.endswith(
        "24 inputs, 0 ignored; 0 added, 0 removed, 0 changed; " + UNCHANGED_OUTCOME
    )
    assert "the rest    skipped  unchanged, nothing to do: no training, no new version" in second
    assert "  train " not in second and "  preprocess " not in second
    assert versions() == ["1"]
    (parent,) = client.search_runs(
        [client.get_experiment_by_name("segpipe").experiment_id],
        filter_string=f"tags.`{OUTCOME_TAG}` = '{UNCHANGED_OUTCOME}'",
    )
    assert parent.data.tags[SKIPPED_TAG] == "true"
    assert parent.data.tags["mlflow.note.content"].startswith("**Unchanged, nothing to do**")
    assert _step_runs(client, parent.data.tags[PIPELINE_RUN_TAG]) == {"pipeline", "snapshot"}

    # week 3: ten new images: retrained on them, reported as ten added inputs
    _add_pairs(data, 10)
    third = _run(data, tmp_path, capsys)
    assert "data changed (10 added, 0 removed, 0 changed, 24 unchanged)" in _line(third, "data")
    assert _line(third, "registered") == "  registered: version 2"
    assert (
        "  snapshot    done" in third
        and "34 inputs, 0 ignored; 10 added, 0 removed, 0 changed" in third
    )
    assert main(["data-diff", "1", "2", "--json"]) == 0
    diff = capsys.readouterr().out
    assert '"added": 10' in diff and '"removed": 0' in diff and '"changed": 0' in diff

    # week 4: one mask relabelled: one changed input
    mask = data / "masks" / "sample_00003.png"
    relabelled = np.asarray(Image.open(mask)).copy()
    relabelled[:8, :8] = 3
    Image.fromarray(relabelled).save(mask)
    fourth = _run(data, tmp_path, capsys)
    assert "data changed (0 added, 0 removed, 1 changed, 33 unchanged)" in _line(fourth, "data")
    assert _line(fourth, "registered") == "  registered: version 3"

    # week 5: the class mix moved (every shape in half the masks is now class 1): the drift
    # numbers show it and max_class_shift stops the run
    masks = sorted((data / "masks").iterdir())
    for path in masks[: len(masks) // 2]:
        values = np.asarray(Image.open(path))
        Image.fromarray(np.where(values > 0, 1, 0).astype(np.uint8)).save(path)
    fifth = _run(data, tmp_path, capsys, max_class_shift=0.03)
    assert "17 changed" in _line(fifth, "data")
    gate = _line(fifth, "gate")
    assert "FAILED" in gate and "the label distribution moved: class class_1" in gate
    assert versions() == ["1", "2", "3"]
    (evaluation,) = client.search_runs(  # this week's: the latest
        [client.get_experiment_by_name("segpipe").experiment_id],
        filter_string="tags.`segpipe.step` = 'evaluate'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    metrics = evaluation.data.metrics
    assert metrics["drift/class_shift"] > 0.03
    assert metrics["drift/class_share/class_1"] > metrics["drift/champion_class_share/class_1"]
