"""Drift: every field of each dataclass a step takes (its settings, the run context) is an input
of its component, typed, a pipeline input wired to that step, described in the KFP UI, and
reaches the step's config with its value."""

from __future__ import annotations

import dataclasses
import inspect
import sys
import types
import typing
from pathlib import Path

import pytest
import yaml

from components.common.settings.config import ClusterConfig, PipelineConfig, settings_of
from components.common.settings.step_component import expanded_types
from pipelines.cli.main import main

# (the compiled task, the step function, the core function it calls)
STEPS = [
    ("snapshot", "components.snapshot.component.snapshot",
     "components.snapshot.snapshot.take_snapshot"),
    ("preprocess", "components.preprocess.component.preprocess",
     "components.preprocess.preprocessor.preprocess"),
    ("train", "components.train.component.train", "components.train.trainer.train"),
    ("launch-train", "components.train.launch_component.launch_train",
     "components.train.launcher.launch"),
    ("evaluate", "components.evaluate.component.evaluate",
     "components.evaluate.evaluator.evaluate"),
    ("publish", "components.publish.component.publish",
     "components.publish.publisher.publish"),
]  # fmt: skip
STEP_IDS = [task for task, _, _ in STEPS]
KFP_TYPES = {"STRING": str, "NUMBER_INTEGER": int, "NUMBER_DOUBLE": float, "BOOLEAN": bool}


def _field_types(kind: type) -> dict[str, type]:
    hints = typing.get_type_hints(kind)
    return {f.name: hints[f.name] for f in dataclasses.fields(kind)}


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


@pytest.mark.parametrize(("step", "function", "core"), STEPS, ids=STEP_IDS)
def test_every_field_is_a_typed_input_of_its_component_and_a_pipeline_input_wired_to_it(
    compiled, step, function, core
):
    component = compiled["components"][f"comp-{step}"]["inputDefinitions"]["parameters"]
    pipeline_inputs = compiled["root"]["inputDefinitions"]["parameters"]
    task = _tasks(compiled)[step]["inputs"]["parameters"]
    kinds = expanded_types(_function(function))
    assert kinds, f"{function} takes no settings"
    for kind in kinds.values():
        for name, field_type in _field_types(kind).items():
            assert name in component, f"{kind.__name__}.{name}: not an input of {step}"
            assert KFP_TYPES[component[name]["parameterType"]] is field_type, name
            assert "defaultValue" not in component[name], f"{name}: a default in {step}"
            if name == "pipeline_run_id":  # the KFP run id, not a pipeline input
                continue
            assert KFP_TYPES[pipeline_inputs[name]["parameterType"]] is field_type, name
            # every step sits in the exit handler's sub-DAG: pipeline inputs arrive as channels
            assert task[name] == {"componentInputParameter": f"pipelinechannel--{name}"}, name


def test_every_setting_is_taken_by_some_step():
    taken = {
        field.name
        for _, function, _ in STEPS
        for kind in expanded_types(_function(function)).values()
        for field in dataclasses.fields(kind)
    }
    assert set(PipelineConfig().parameters()) <= taken


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


def _sentinels(kinds: list[type]) -> dict[str, object]:
    """A distinct value per field of `kinds`, none of them its default."""
    values: dict[str, object] = {}
    for kind in kinds:
        for field in dataclasses.fields(kind):
            field_type = _field_types(kind)[field.name]
            index = len(values)
            if field.name in values:
                continue
            if field_type is bool:
                values[field.name] = not field.default
            elif field_type is int:
                values[field.name] = 1000 + index
            elif field_type is float:
                values[field.name] = 1000.5 + index
            else:
                values[field.name] = f"sentinel-{field.name}"
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


@pytest.mark.parametrize(("step", "function", "core"), STEPS, ids=STEP_IDS)
def test_every_field_reaches_the_step_with_its_value(step, function, core, tmp_path, monkeypatch):
    """The component's function as KFP runs it in the task, with a stand-in core function
    catching what the step passes on."""
    from components.common.settings.step_component import step_component

    caught = []
    kinds = list(expanded_types(_function(function)).values())

    def catch(*args, **kwargs):
        caught.extend((*args, *kwargs.values()))
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
    for kind in kinds:  # sentinel values need not pass the checks: this test is the wiring
        monkeypatch.setattr(kind, "__post_init__", lambda self: None, raising=False)
    kfp_function = step_component(_function(function), "image:1").python_func
    sentinels = _sentinels(kinds)
    arguments = {}
    for name, parameter in inspect.signature(kfp_function).parameters.items():
        if name in sentinels:
            arguments[name] = sentinels[name]
        elif parameter.annotation is str:
            arguments[name] = f"other-{name}" if name != "node_selector" else "a=b"
        elif parameter.annotation is int:
            arguments[name] = 1
        else:  # an artifact
            arguments[name] = _Artifact(tmp_path / name)
    with pytest.raises(_Caught):
        kfp_function(**arguments)
    # each settings dataclass and the run context reaches the core function whole, or as the
    # values of its fields (publish's export root; the cluster settings in launch's Workers)
    configs = [c for c in caught if type(c) in kinds]
    for config in configs:
        for name, value in dataclasses.asdict(config).items():
            assert value == sentinels[name], f"{type(config).__name__}.{name}"
    whole = [c for c in caught if dataclasses.is_dataclass(c)]
    arrived = [*caught, *(v for c in whole for v in dataclasses.asdict(c).values())]
    for kind in kinds:
        if not any(type(c) is kind for c in configs):
            for field in dataclasses.fields(kind):
                assert sentinels[field.name] in arrived, f"{kind.__name__}.{field.name} is lost"


def test_a_task_missing_a_field_is_an_error():
    from components.common.settings.config import TrainConfig
    from components.common.settings.step_component import from_inputs

    inputs = dataclasses.asdict(TrainConfig())
    assert from_inputs(TrainConfig, {**inputs, "dataset": object()}) == TrainConfig()
    del inputs["flip"], inputs["seed"]
    with pytest.raises(TypeError, match=r"TrainConfig fields missing .*\['seed', 'flip'\]"):
        from_inputs(TrainConfig, inputs)


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
