"""Settings are checked where they enter: `segpipe run/compile/submit/schedule` refuse a typo,
naming the allowed values, before any work and before any request to a cluster. (How long a
refusal takes: tests/benchmarks/bench_refusals.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest
from fake_kfp import FakeKfpServer
from settings_typos import TYPOS

from components.common.settings.config import (
    ClusterConfig,
    GatePolicy,
    PipelineConfig,
    PublishConfig,
)
from pipelines.cli.main import main
from pipelines.cli.params import SECTION_TITLES

TYPO_IDS = [typo.split("=")[0] for typo, _ in TYPOS]


@pytest.fixture(autouse=True)
def no_cluster_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("KF_PIPELINES_ENDPOINT", "SEGPIPE_KFP_TOKEN", "SEGPIPE_REGISTRY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def kfp_api():
    with FakeKfpServer() as state:
        yield state


@pytest.mark.parametrize(("typo", "message"), TYPOS, ids=TYPO_IDS)
def test_a_typo_is_refused_by_every_command_before_any_work(typo, message, tmp_path, kfp_api):
    workdir = tmp_path / "work"
    workdir.mkdir()
    cluster = ["--host", kfp_api.url, "--data", "gs://b/d", "--registry", "r.example"]
    commands = {
        "run": ["run", "--workdir", str(workdir)],
        "compile": ["compile", "-o", str(workdir / "p.yaml"), "--registry", "r.example"],
        "submit": ["submit", *cluster],
        "schedule": ["schedule", "--cron", "0 3 * * 1", *cluster],
    }
    for command, args in commands.items():
        with pytest.raises(SystemExit) as refused:
            main([*args, "--param", typo])
        assert message in str(refused.value.code), command
    assert list(workdir.iterdir()) == []  # no sample data, store, outputs or package
    assert kfp_api.requests == []


@pytest.mark.parametrize(
    ("param", "message"),
    [
        ("epoch=3", "unknown pipeline parameter 'epoch'; did you mean epochs?"),
        ("flip=ture", "--param flip: 'ture' is not true or false"),
        ("epochs=3.5", "--param epochs: '3.5' is not an int"),
        ("val_fraction=20", r"val_fraction must be in [0, 1), got 20.0"),
        ("min_mean_iou=50", "min_mean_iou must be in [0, 1], got 50.0"),
        ("train_memory=16GB", "train_memory='16GB' is not valid: expected bytes with an optional"),
        ("alias=previous", "alias='previous' is the alias publish gives the version a champion"),
    ],
)
def test_names_types_and_ranges_are_refused_saying_what_is_allowed(param, message, tmp_path):
    with pytest.raises(SystemExit) as refused:
        main(["compile", "-o", str(tmp_path / "p.yaml"), "--registry", "r", "--param", param])
    assert message in str(refused.value.code)
    assert not (tmp_path / "p.yaml").exists()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"min_mean_iou": 1.01}, r"min_mean_iou must be in \[0, 1\], got 1.01"),
        ({"max_drop": float("nan")}, r"max_drop must be in \[-1, 1\], got nan"),
        ({"eval_split": "dev"}, "eval_split must be one of train, val, test; got 'dev'"),
    ],
)
def test_gate_policy_checks(settings, message):
    with pytest.raises(ValueError, match=message):
        GatePolicy(**settings)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"model_name": "team/seg"}, "model_name='team/seg' is not a registered model name"),
        ({"model_name": " "}, "is not a registered model name"),
        ({"export_root": ""}, "export_root is empty"),
        ({"alias": "latest"}, "alias='latest' is not an MLflow alias"),
        ({"alias": "v3"}, "alias='v3' is not an MLflow alias"),
        ({"alias": "best model"}, "alias='best model' is not an MLflow alias"),
        ({"alias": "previous"}, "the alias publish gives the version a champion replaces"),
    ],
)
def test_publish_config_checks(settings, message):
    with pytest.raises(ValueError, match=message):
        PublishConfig(**settings)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"mlflow_secret": "Team_MLflow"}, "mlflow_secret='Team_MLflow' is not valid"),
        ({"train_cpu": "4 cores"}, "train_cpu='4 cores' is not valid"),
        ({"train_memory": "16 GiB"}, "train_memory='16 GiB' is not valid"),
        ({"train_accelerator": "nvidia gpu"}, "train_accelerator='nvidia gpu' is not valid"),
        ({"train_gpus": -1}, "train_gpus must be >= 0, got -1"),
    ],
)
def test_cluster_config_checks(settings, message):
    with pytest.raises(ValueError, match=message):
        ClusterConfig(**settings)
    ClusterConfig(train_cpu="500m", train_memory="512Mi", train_accelerator="google.com/tpu")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"crop_height": 64}, "set both crop_height and crop_width or neither, got 64x0"),
        (
            {"crop_height": 64, "crop_width": 64, "architecture": "deeplabv3plus"},
            "crop_height/crop_width need architecture unet",
        ),
        (
            {"architecture": "deeplabv3plus", "input_height": 200, "input_width": 256},
            "model input 200x256 must have sides divisible by 16 for deeplabv3plus",
        ),
        ({"eval_split": "test"}, "eval_split=test, but layout=paired-folders hashes no input"),
        (
            {"class_names": "sky,road", "num_classes": 2, "allow_absent_classes": "car"},
            r"allow_absent_classes names car, not in class_names \(sky, road\)",
        ),
        ({"class_names": "sky,road"}, "class_names lists 2 names for num_classes=4"),
        ({"layout": "list-files"}, "layout=list-files needs list_files"),
        ({"beam_options": "--project 'p"}, "beam_options=.*No closing quotation"),
        ({"epochs": 3, "warmup_epochs": 3}, r"warmup_epochs must be in \[0, epochs=3\)"),
        ({"experiment": ""}, "experiment is empty"),
    ],
)
def test_rules_across_settings_and_steps(params, message):
    with pytest.raises(ValueError, match=message):
        PipelineConfig().with_parameters(params)


def test_settings_the_rules_allow_pass():
    PipelineConfig().with_parameters({"eval_split": "test", "test_fraction": 0.1})
    PipelineConfig().with_parameters({"eval_split": "test", "layout": "voc"})  # its own splits
    PipelineConfig().with_parameters({"image_height": 100, "input_height": 96})
    assert PipelineConfig().with_parameters({"learning_rate": 1}).train.learning_rate == 1.0


def test_a_json_number_of_the_other_kind_is_taken_as_the_settings_type():
    """KFP hands a float input of value 1 to the component as the JSON number 1."""
    from components.common.settings.config import TrainConfig

    config = TrainConfig(learning_rate=1, epochs=3.0)
    assert type(config.learning_rate) is float and type(config.epochs) is int
    with pytest.raises(ValueError, match="epochs must be a int, got 2.5"):
        TrainConfig(epochs=2.5)
    with pytest.raises(ValueError, match="flip must be a bool, got 1"):
        TrainConfig(flip=1)


def test_segpipe_params_lists_every_parameter_by_step_with_type_default_and_help(
    capsys, monkeypatch
):
    monkeypatch.setenv("COLUMNS", "100")  # the help wraps at the terminal's width
    assert main(["params"]) == 0
    out = capsys.readouterr().out
    for name in PipelineConfig().parameters():
        assert f" {name} " in out, name
    epochs = next(line for line in out.splitlines() if line.startswith("  epochs "))
    assert epochs.split()[:3] == ["epochs", "int", "20"]
    assert "passes over the train split [>= 1]" in epochs
    titles = [line for line in out.splitlines() if line and not line.startswith(" ")]
    assert titles[1:3] == ["every step", SECTION_TITLES["snapshot"]]
    assert titles[3:5] == ["preprocess", "train"]


def test_segpipe_params_shows_a_presets_values_as_overrides(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    from pipelines.cli.params import describe_parameters

    assert main(["params", "--preset", "camvid"]) == 0
    assert capsys.readouterr().out.strip() == describe_parameters("camvid", 80).strip()
    out = describe_parameters("camvid", width=200)  # one line per parameter
    assert "* set by --preset camvid" in out
    lines = {line[2:].split()[0]: line for line in out.splitlines() if line[:2] in ("  ", "* ")}
    assert lines["epochs"].startswith("* epochs ")
    from pipelines.presets import PRESETS

    assert lines["epochs"][2:].split()[:3] == ["epochs", "int", str(PRESETS["camvid"]["epochs"])]
    assert "passes over the train split [>= 1] (default 20)" in lines["epochs"]
    assert lines["seed"].split()[:3] == ["seed", "int", "42"]  # not set by the preset


def test_help_points_at_segpipe_params(capsys):
    for command in ("run", "compile", "submit", "schedule"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert "`segpipe params` lists" in " ".join(capsys.readouterr().out.split()), command


def test_step_cli_flags_carry_the_settings_help():
    import argparse

    from components.common.cli import add_config_flags
    from components.common.settings.config import TrainConfig

    parser = argparse.ArgumentParser()
    add_config_flags(parser, TrainConfig)
    text = " ".join(parser.format_help().split())
    assert (
        "--optimizer STR optimiser (sgd and rmsprop use momentum) [one of adam, sgd, rmsprop]"
        in text
    )
    assert "(default: 'adam')" in text


def test_the_pipeline_accepts_every_preset(tmp_path: Path):
    from pipelines.presets import PRESETS

    for name in PRESETS:
        assert (
            main(
                [
                    "compile",
                    "-o",
                    str(tmp_path / f"{name}.yaml"),
                    "--registry",
                    "r",
                    "--preset",
                    name,
                ]
            )
            == 0
        )
