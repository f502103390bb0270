"""The pipeline: compiled structure, CLI parameters, and local end-to-end runs with kfp.local."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipelines.cli.main import main


@pytest.fixture
def compiled(tmp_path: Path) -> dict:
    path = tmp_path / "pipeline.yaml"
    assert (
        main(["compile", "-o", str(path), "--registry", "reg.example/team", "--tag", "1.2.3"]) == 0
    )
    return next(yaml.safe_load_all(path.read_text()))  # then the platform (Kubernetes) spec


def _condition(tasks: dict, name: str) -> tuple[str, dict]:
    """The key and spec of the condition task named `name` in a DAG's `tasks`."""
    ((key, task),) = [(k, t) for k, t in tasks.items() if t["taskInfo"]["name"] == name]
    return key, task


def test_compiled_pipeline_has_five_steps_the_rest_under_the_snapshot_train_in_two_branches(
    compiled,
):
    components = compiled["components"]
    root_tasks = compiled["root"]["dag"]["tasks"]

    def inner(task: dict) -> dict:
        return components[task["componentRef"]["name"]]["dag"]["tasks"]

    # finish, the exit task, runs once the steps end, however they end, and gives the outputs
    assert set(root_tasks) == {"exit-handler-1", "finish"}
    assert root_tasks["finish"]["triggerPolicy"]["strategy"] == "ALL_UPSTREAM_TASKS_COMPLETED"
    assert root_tasks["finish"]["dependentTasks"] == ["exit-handler-1"]
    outputs = compiled["root"]["dag"]["outputs"]["parameters"]
    assert {o["valueFromParameter"]["producerSubtask"] for o in outputs.values()} == {"finish"}
    assert set(outputs) == {"passed", "train_run_id", "outcome", "parent_run_id"}
    handler = inner(root_tasks["exit-handler-1"])
    changed_key, changed = _condition(handler, "data-or-settings-changed")
    assert set(handler) == {"snapshot", changed_key}
    # the run ends after the snapshot when it returns "" (nothing changed, skip_unchanged)
    assert changed["triggerPolicy"]["condition"] == (
        "inputs.parameter_values['pipelinechannel--snapshot-Output'] != ''"
    )
    steps = inner(changed)
    gate_key, gate = _condition(steps, "gate-passed")
    (branches_name,) = [n for n in steps if n.startswith("condition-branches")]
    assert set(steps) == {"preprocess", "evaluate", gate_key, branches_name}
    assert set(inner(gate)) == {"publish"}
    assert "evaluate-Output" in gate["triggerPolicy"]["condition"]
    # train_workers picks one branch at run time: the one train pod, or the TrainJob launcher
    branches = {t["taskInfo"]["name"]: inner(t) for t in inner(steps[branches_name]).values()}
    assert {n: set(tasks) for n, tasks in branches.items()} == {
        "one-train-pod": {"train"},
        "train-workers": {"launch-train"},
    }
    assert branches["one-train-pod"]["train"]["retryPolicy"]["maxRetryCount"] == 3
    assert steps["evaluate"]["cachingOptions"] == {}


def test_preprocess_is_cached_with_the_snapshots_fingerprint_as_an_input(compiled):
    """The cache key of preprocess follows the data: the fingerprint is one of its inputs."""
    components = compiled["components"]
    handler = components["comp-exit-handler-1"]["dag"]["tasks"]
    _, changed = _condition(handler, "data-or-settings-changed")
    preprocess = components[changed["componentRef"]["name"]]["dag"]["tasks"]["preprocess"]
    assert preprocess["cachingOptions"] == {"enableCache": True}
    fingerprint = preprocess["inputs"]["parameters"]["data_fingerprint"]
    assert fingerprint == {"componentInputParameter": "pipelinechannel--snapshot-Output"}
    # the sub-DAG gets it from the snapshot task's output
    wired = changed["inputs"]["parameters"]["pipelinechannel--snapshot-Output"]
    assert wired == {
        "taskOutputParameter": {"outputParameterKey": "Output", "producerTask": "snapshot"}
    }
    # the snapshot itself always runs: it is what looks at the data
    assert handler["snapshot"]["cachingOptions"] == {}
    assert "pipeline_run_id" in handler["snapshot"]["inputs"]["parameters"]


def test_compiled_images_are_pinned_from_one_place(compiled):
    executors = compiled["deploymentSpec"]["executors"]
    images = {e["container"]["image"] for e in executors.values()}
    assert images == {
        "reg.example/team/segpipe-beam:1.2.3",
        "reg.example/team/segpipe-trainer:1.2.3",
        "reg.example/team/segpipe-runtime:1.2.3",
    }
    for executor in executors.values():
        assert "pip install" not in " ".join(executor["container"]["command"])


def test_compiled_yaml_loads_back_into_kfp(tmp_path):
    from kfp import components

    path = tmp_path / "pipeline.yaml"
    assert main(["compile", "-o", str(path), "--registry", "r.example", "--param", "epochs=3"]) == 0
    loaded = components.load_component_from_file(str(path))
    assert loaded.name == "segpipe"
    assert loaded.component_spec.inputs["epochs"].default == 3


def test_unknown_or_malformed_param_is_refused():
    with pytest.raises(SystemExit, match="unknown pipeline parameter"):
        main(["compile", "--param", "epoch=3"])
    with pytest.raises(SystemExit, match="--param epochs: .three. is not an int"):
        main(["compile", "--param", "epochs=three"])


def test_settings_that_would_train_from_nothing_are_refused_before_anything_runs(tmp_path):
    with pytest.raises(SystemExit, match=r"val_fraction must be in \[0, 1\), got 1.5"):
        main(["run", "--workdir", str(tmp_path), "--param", "val_fraction=1.5"])
    with pytest.raises(SystemExit, match=r"num_classes must be in \[2, 255\], got 300"):
        main(["compile", "--param", "num_classes=300"])
    assert not any(tmp_path.iterdir())  # no sample data, no store: nothing started


def test_importing_pipelines_does_not_import_tensorflow_or_beam():
    code = (
        "import sys, pipelines.cli.main, pipelines.pipeline, pipelines.local.runner;"
        "print(sorted(m for m in ('tensorflow', 'apache_beam', 'mlflow') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


@pytest.mark.slow  # two kfp.local runs (the local_runs fixture)
def test_local_runs_publish_a_champion_then_refuse_an_impossible_gate(local_runs):
    from mlflow.tracking import MlflowClient

    workdir, uri, (first, second) = local_runs
    client = MlflowClient(uri)
    champion = client.get_model_version_by_alias("segpipe-unet", "champion")
    assert "registered: version 1" in first
    assert (workdir / "exports" / "segpipe-unet" / str(champion.version) / "_SUCCESS").exists()
    assert "gate:       FAILED" in second
    assert len(client.search_model_versions("name = 'segpipe-unet'")) == 1
    assert client.get_model_version_by_alias("segpipe-unet", "champion").version == champion.version


@pytest.mark.slow  # two kfp.local runs (the local_runs fixture)
def test_each_local_run_is_one_closed_parent_run_with_its_steps_and_headline(local_runs):
    from mlflow.tracking import MlflowClient

    _, uri, _ = local_runs
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("segpipe")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    parents = client.search_runs(
        [experiment.experiment_id],
        "tags.`segpipe.step` = 'pipeline'",
        order_by=["attributes.start_time ASC"],
    )
    assert [p.data.tags["gate.passed"] for p in parents] == ["true", "false"]
    published, refused = parents
    for parent in parents:
        assert parent.info.status == "FINISHED"
        assert parent.info.run_name.startswith("tiny-data")  # the data folder, then the time
        assert 0.0 <= parent.data.metrics["mean_iou"] <= 1.0
        assert {"iou/class_0", "iou/class_3"} <= set(parent.data.metrics)
        children = client.search_runs(
            [experiment.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'"
        )
        steps = sorted(c.data.tags["segpipe.step"] for c in children)
        expected = ["evaluate", "preprocess", "snapshot", "train"]
        assert steps == sorted([*expected, "publish"] if parent is published else expected)
        assert all(c.info.status == "FINISHED" for c in children)
        # kfp.local's run folder, where the steps' outputs and the run's log are
        assert Path(parent.data.tags["segpipe.run_folder"], "evaluate").is_dir()
    assert published.data.tags["registered_version"] == "1"
    assert "registered_version" not in refused.data.tags
    assert not client.search_runs([experiment.experiment_id], "attributes.status = 'RUNNING'")


def test_preset_sets_defaults_and_params_override_it(tmp_path):
    from kfp import components

    path = tmp_path / "pipeline.yaml"
    args = ["compile", "-o", str(path), "--registry", "r.example/x", "--preset", "camvid"]
    assert main([*args, "--param", "epochs=3"]) == 0
    inputs = components.load_component_from_file(str(path)).component_spec.inputs
    assert inputs["layout"].default == "list-files"
    assert inputs["ignore_values"].default == "11"
    assert inputs["unet_depth"].default == 4  # the default is 3
    assert inputs["epochs"].default == 3


def test_every_preset_names_only_known_parameters():
    from components.common.settings.config import PipelineConfig
    from pipelines.presets import PRESETS

    defaults = PipelineConfig().parameters()
    for name, params in PRESETS.items():
        assert set(params) <= set(defaults), name
        for key, value in params.items():
            assert type(value) is type(defaults[key]), (name, key)
