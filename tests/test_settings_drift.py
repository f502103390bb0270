"""Drift: every setting of each config class is a component input, a typed pipeline input wired
to that step, described in the KFP UI, and reaches the step's config with its value."""

from __future__ import annotations

import dataclasses
import inspect
import sys
import types
from pathlib import Path

import pytest
import yaml

from components.common.config import (
    ClusterConfig,
    GatePolicy,
    PipelineConfig,
    PreprocessConfig,
    PublishConfig,
    SnapshotConfig,
    TrainConfig,
    config_from_inputs,
    setting_types,
    settings_of,
)
from pipelines.cli import main

# (config class, the compiled task, the component function, the core function it calls)
STEPS = [
    (SnapshotConfig, "snapshot", "components.snapshot.component.snapshot",
     "components.snapshot.snapshot.take_snapshot"),
    (PreprocessConfig, "preprocess", "components.preprocess.component.preprocess",
     "components.preprocess.preprocessor.preprocess"),
    (TrainConfig, "train", "components.train.component.train",
     "components.train.trainer.train"),
    (TrainConfig, "launch-train", "components.train.launch_component.launch_train",
     "components.train.launcher.launch"),
    (GatePolicy, "evaluate", "components.evaluate.component.evaluate",
     "components.evaluate.evaluator.evaluate"),
    (PublishConfig, "publish", "components.publish.component.publish",
     "components.publish.publisher.publish"),
]  # fmt: skip
STEP_IDS = [task for _, task, _, _ in STEPS]


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The cluster pipeline: every step, the TrainJob launcher included."""
    path = tmp_path_factory.mktemp("drift") / "pipeline.yaml"
    assert main(["compile", "-o", str(path), "--registry", "r.example", "--tag", "1"]) == 0
    return next(yaml.safe_load_all(path.read_text()))


def _tasks(spec: dict) -> dict[str, dict]:
    tasks = dict(spec["root"]["dag"]["tasks"])
    for component in spec["components"].values():
        tasks.update(component.get("dag", {}).get("tasks", {}))
    return tasks


def _function(dotted: str):
    import importlib

    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


@pytest.mark.parametrize(("config_type", "step", "module", "core"), STEPS, ids=STEP_IDS)
def test_every_setting_is_an_input_of_its_component_with_its_type(config_type, step, module, core):
    parameters = inspect.signature(_function(module)).parameters
    for name, kind in setting_types(config_type).items():
        assert name in parameters, f"{config_type.__name__}.{name}: not an input of {module}"
        assert parameters[name].annotation is kind, f"{name}: typed {parameters[name].annotation}"
        assert parameters[name].default is inspect.Parameter.empty, f"{name}: a default here"


@pytest.mark.parametrize(("config_type", "step", "module", "core"), STEPS, ids=STEP_IDS)
def test_every_setting_is_a_typed_pipeline_input_wired_to_its_step(
    compiled, config_type, step, module, core
):
    inputs = compiled["root"]["inputDefinitions"]["parameters"]
    task = _tasks(compiled)[step]["inputs"]["parameters"]
    kinds = {str: "STRING", int: "NUMBER_INTEGER", float: "NUMBER_DOUBLE", bool: "BOOLEAN"}
    for setting in settings_of(config_type):
        name, kind = setting.name, setting_types(config_type)[setting.name]
        assert inputs[name]["parameterType"] == kinds[kind], name
        assert inputs[name]["defaultValue"] == setting.default, name
        # every step sits in the exit handler's sub-DAG: pipeline inputs arrive as channels
        assert task[name] == {"componentInputParameter": f"pipelinechannel--{name}"}, name


def test_cluster_settings_are_pipeline_inputs_and_used_by_the_cluster_pipeline(compiled, tmp_path):
    inputs = compiled["root"]["inputDefinitions"]["parameters"]
    path = tmp_path / "cluster.yaml"
    assert main(["compile", "-o", str(path), "--registry", "r.example", "--tag", "1"]) == 0
    text = path.read_text()
    for setting in settings_of(ClusterConfig):
        assert inputs[setting.name]["defaultValue"] == setting.default
        assert f"pipelinechannel--{setting.name}" in text or (
            f"componentInputParameter: {setting.name}" in text
        ), f"{setting.name} is not used by the compiled cluster pipeline"


def test_the_pipeline_inputs_are_exactly_data_dir_and_the_settings(compiled):
    inputs = compiled["root"]["inputDefinitions"]["parameters"]
    assert set(inputs) == {"data_dir", *PipelineConfig().parameters()}
    assert "defaultValue" not in inputs["data_dir"]


def test_every_input_of_the_pipeline_and_of_each_step_has_a_description(compiled):
    described = {"root": compiled["root"]["inputDefinitions"]}
    for step in (*STEP_IDS, "finish"):
        described[step] = compiled["components"][f"comp-{step}"]["inputDefinitions"]
    for where, definitions in described.items():
        for kind in ("parameters", "artifacts"):
            for name, spec in definitions.get(kind, {}).items():
                assert spec.get("description", "").strip(), f"{where}: {name} has no description"
    optimizer = compiled["root"]["inputDefinitions"]["parameters"]["optimizer"]["description"]
    assert "one of adam, sgd, rmsprop" in optimizer


def _sentinels(config_type: type) -> dict[str, object]:
    """A distinct value per setting, none of them the default."""
    values: dict[str, object] = {}
    for index, setting in enumerate(settings_of(config_type)):
        kind = setting_types(config_type)[setting.name]
        if kind is bool:
            values[setting.name] = not setting.default
        elif kind is int:
            values[setting.name] = 1000 + index
        elif kind is float:
            values[setting.name] = 1000.5 + index
        else:
            values[setting.name] = f"sentinel-{setting.name}"
    return values


class _Caught(Exception):
    """Raised by the stand-in core function once it has the config."""


class _Artifact:
    def __init__(self, path: Path):
        self.path, self.uri, self.metadata = str(path), path.as_uri(), {}

    def log_metric(self, key: str, value: float) -> None:
        self.metadata[key] = value

    def log_confusion_matrix(self, categories: list[str], matrix: list[list[int]]) -> None:
        self.metadata["confusionMatrix"] = {"categories": categories, "matrix": matrix}


@pytest.mark.parametrize(("config_type", "step", "module", "core"), STEPS, ids=STEP_IDS)
def test_every_setting_reaches_the_steps_config_with_its_value(
    config_type, step, module, core, tmp_path, monkeypatch
):
    """The component as KFP runs it, with a stand-in core function catching the config."""
    caught = []

    def catch(*args, **kwargs):
        caught.extend(a for a in (*args, *kwargs.values()) if isinstance(a, config_type))
        raise _Caught  # what the component does with the result is not this test's

    core_module, _, core_function = core.rpartition(".")
    stand_in = types.ModuleType(core_module)
    setattr(stand_in, core_function, catch)
    if core_module.endswith("launcher"):  # the launcher's worker description, as it is
        import components.train.launcher as launcher

        stand_in.Workers = launcher.Workers
    monkeypatch.setitem(sys.modules, core_module, stand_in)
    # train's KFP figures are read back from its MLflow run, which the stand-in never made
    figures = types.ModuleType("components.train.epoch_metrics")
    figures.training_figures = lambda run_id: {}
    monkeypatch.setitem(sys.modules, "components.train.epoch_metrics", figures)
    # sentinel values need not pass the checks: this test is about the wiring
    monkeypatch.setattr(config_type, "__post_init__", lambda self: None)
    function = _function(module)
    sentinels = _sentinels(config_type)
    defaults = PipelineConfig().parameters()  # other steps' settings (the snapshot reads some)
    arguments = {}
    for name, parameter in inspect.signature(function).parameters.items():
        if name in sentinels:
            arguments[name] = sentinels[name]
        elif name in defaults:
            arguments[name] = defaults[name]
        elif parameter.annotation is str:
            arguments[name] = f"other-{name}" if name != "node_selector" else "a=b"
        elif parameter.annotation is int:
            arguments[name] = 1
        else:  # an artifact
            arguments[name] = _Artifact(tmp_path / name)
    with pytest.raises(_Caught):
        function(**arguments)
    (config,) = caught
    assert dataclasses.asdict(config) == sentinels


def test_config_from_inputs_refuses_inputs_missing_a_setting():
    inputs = dataclasses.asdict(TrainConfig())
    assert config_from_inputs(TrainConfig, {**inputs, "dataset": object()}) == TrainConfig()
    del inputs["flip"], inputs["seed"]
    with pytest.raises(TypeError, match="TrainConfig settings missing .*: seed, flip"):
        config_from_inputs(TrainConfig, inputs)


def test_a_step_input_no_pipeline_input_or_argument_feeds_is_an_error():
    from kfp import dsl

    from pipelines.pipeline import step_inputs

    def step(epochs: int, not_a_setting: str) -> str:
        return ""

    step.__annotations__ = {"epochs": int, "not_a_setting": str, "return": str}  # not strings
    component = dsl.component(base_image="python:3.11", install_kfp_package=False)(step)
    assert step_inputs(component, {"epochs": 3}, not_a_setting="x") == {
        "epochs": 3,
        "not_a_setting": "x",
    }
    with pytest.raises(TypeError, match=r"\[\] given twice, \['not_a_setting'\] not given"):
        step_inputs(component, {"epochs": 3})
    with pytest.raises(TypeError, match=r"\['epochs'\] given twice"):
        step_inputs(component, {"epochs": 3}, epochs=4, not_a_setting="x")


def test_an_exit_tasks_final_status_is_left_to_kfp():
    from kfp import dsl
    from kfp.dsl import PipelineTaskFinalStatus

    from pipelines.pipeline import step_inputs

    def close(experiment: str, status: PipelineTaskFinalStatus) -> str:
        return ""

    close.__annotations__ = {"experiment": str, "status": PipelineTaskFinalStatus, "return": str}
    component = dsl.component(base_image="python:3.11", install_kfp_package=False)(close)
    assert step_inputs(component, {"experiment": "segpipe"}) == {"experiment": "segpipe"}
