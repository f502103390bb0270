"""No model from nothing: bad train settings and an empty train split are refused up front."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from components.common.settings.config import PipelineConfig, RunContext, TrainConfig
from pipelines.presets import PRESETS

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"epochs": -1}, "epochs must be >= 1, got -1"),
        ({"epochs": 0}, "epochs must be >= 1, got 0"),
        ({"batch_size": 0}, "batch_size must be >= 1, got 0"),
        ({"learning_rate": 0.0}, "learning_rate must be > 0, got 0.0"),
        ({"learning_rate": float("nan")}, "learning_rate must be > 0, got nan"),
        ({"unet_depth": 0}, "unet_depth must be >= 1, got 0"),
        ({"input_height": -8}, "input_height must be >= 0, got -8"),
        ({"seed": -1}, r"seed must be in \[0, 2\*\*32\), got -1"),
        ({"momentum": 1.5}, r"momentum must be in \[0, 1\], got 1.5"),
        ({"epochs": 3, "warmup_epochs": 3}, r"warmup_epochs must be in \[0, epochs=3\), got 3"),
        ({"dice_weight": -0.5}, "dice_weight must be >= 0, got -0.5"),
        ({"train_cache": ""}, "train_cache must be"),
        ({"scale_min": 0.0}, "scale_min must be > 0, got 0.0"),
        ({"scale_min": 1.5}, "need 0 < scale_min <= scale_max, got 1.5, 1.0"),
        ({"color_jitter": 1.0}, r"color_jitter must be in \[0, 1\), got 1.0"),
        ({"early_stopping_patience": -1}, "early_stopping_patience must be >= 0"),
        ({"checkpoint_every_steps": -5}, "checkpoint_every_steps must be >= 0"),
        ({"tracking_outage_s": -1}, "tracking_outage_s must be >= 0, got -1"),
        ({"architecture": "segnet"}, "architecture must be one of unet, deeplabv3plus; got 'segn"),
        ({"backbone": "vgg16"}, "backbone must be one of mobilenetv2, resnet50; got 'vgg16'"),
        ({"optimizer": "adamw"}, "optimizer must be one of adam, sgd, rmsprop; got 'adamw'"),
        ({"lr_schedule": "step"}, "lr_schedule must be one of cosine, polynomial, constant"),
        ({"precision": "fp16"}, "precision must be one of auto, float32, mixed_float16"),
    ],
)
def test_bad_train_settings_are_refused_naming_field_value_and_range(setting, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**setting)


def test_defaults_and_presets_are_valid_settings():
    TrainConfig()
    for name, preset in PRESETS.items():
        config = PipelineConfig().with_parameters(preset)
        assert config.train.epochs == preset.get("epochs", TrainConfig.epochs), name


def test_segpipe_refuses_a_bad_setting_before_running_anything(tmp_path):
    from pipelines.cli.main import main

    with pytest.raises(SystemExit, match="invalid setting: epochs must be >= 1, got -1"):
        main(["run", "--workdir", str(tmp_path), "--param", "epochs=-1"])
    with pytest.raises(SystemExit, match="optimizer must be one of"):
        main(["compile", "-o", str(tmp_path / "p.yaml"), "--param", "optimizer=adamw"])
    assert list(tmp_path.iterdir()) == []  # no sample data, store or outputs


@pytest.mark.slow
def test_train_cli_refuses_zero_epochs_before_any_run(mlflow_store, tiny_shards, tmp_path):
    from mlflow.tracking import MlflowClient

    command = [sys.executable, "-m", "components.train", "--dataset", str(tiny_shards)]
    command += ["--model-dir", str(tmp_path / "model"), "--epochs", "0"]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "invalid setting: epochs must be >= 1, got 0" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "model").exists()
    experiment = MlflowClient(mlflow_store).get_experiment_by_name("segpipe").experiment_id
    assert MlflowClient(mlflow_store).search_runs([experiment]) == []


@pytest.mark.slow
def test_an_empty_train_split_is_refused_before_any_run(mlflow_store, tiny_shards, tmp_path):
    from mlflow.tracking import MlflowClient

    from components.train.trainer import train

    # what preprocess wrote before it refused val_fraction >= 1: every example in val, the
    # train shards empty
    shards = tmp_path / "shards"
    shutil.copytree(tiny_shards, shards)
    for shard in (shards / "train").iterdir():
        shard.write_bytes(b"")  # a TFRecord file of no records
    stats = json.loads((shards / "stats.json").read_text())
    stats["splits"]["train"]["examples"] = 0
    (shards / "stats.json").write_text(json.dumps(stats))

    with pytest.raises(ValueError, match=r"stats.json: the train split has 0 examples, nothing"):
        train(
            str(shards),
            str(tmp_path / "model"),
            TrainConfig(epochs=1),
            RunContext("segpipe", "empty"),
        )
    assert not (tmp_path / "model").exists()
    experiment = MlflowClient(mlflow_store).get_experiment_by_name("segpipe").experiment_id
    assert MlflowClient(mlflow_store).search_runs([experiment]) == []


def test_full_batches_need_one_full_batch_of_train_examples():
    from components.train.trainer import train_steps

    stats = {"splits": {"train": {"examples": 5}}}
    assert train_steps(stats, 4, False, "s.json") == 2
    assert train_steps(stats, 4, True, "s.json") == 1
    with pytest.raises(ValueError, match="5 examples, fewer than one full batch of 8"):
        train_steps(stats, 8, True, "s.json")


# ---- the local SQLite store, created by runs that start together ----------------------------

_CREATE_STORE = """
import sys, time
from pathlib import Path
folder, start, how = Path(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
uri = f"sqlite:///{folder / 'mlflow.db'}"
import mlflow, pipelines.local.runner
from components.common.tracking.runs import step_run
while time.time() < start:  # both processes touch the new store at the same moment
    time.sleep(0.001)
if how == "segpipe-run":
    pipelines.local.runner._ensure_experiment(uri, "segpipe", folder / "mlartifacts")
else:
    import os
    os.environ["MLFLOW_TRACKING_URI"] = uri
    with step_run("train", "segpipe", "p"):
        pass
"""


@pytest.mark.slow
@pytest.mark.parametrize("how", ["segpipe-run", "step"])
def test_runs_started_together_create_a_new_sqlite_store_once(how, tmp_path):
    """`segpipe run` (and a step CLI) in a new folder, twice at once: both succeed."""
    for attempt in range(2):  # the race is likely, not certain, on the old code
        folder = tmp_path / f"fresh-{attempt}"
        folder.mkdir()
        start = time.time() + 10  # past both processes' imports
        command = [sys.executable, "-c", _CREATE_STORE, str(folder), str(start), how]
        processes = [
            subprocess.Popen(command, cwd=REPO, stderr=subprocess.PIPE, text=True) for _ in range(2)
        ]
        for process in processes:
            _, stderr = process.communicate(timeout=120)
            assert process.returncode == 0, stderr[-2000:]
