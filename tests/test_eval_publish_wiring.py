"""The compiled pipeline hands the gate policy, report outputs and data set to the right tasks."""

from __future__ import annotations

from pathlib import Path

import yaml

from components.common.settings.config import GatePolicy
from pipelines.cli.main import main


def test_gate_policy_reports_and_dataset_are_wired(tmp_path: Path):
    path = tmp_path / "pipeline.yaml"
    args = ["compile", "-o", str(path), "--registry", "r.example", "--param", "max_drop=0.02"]
    args += ["--param", "allow_absent_classes=sign"]
    assert main([*args, "--param", "max_class_drop=0.1"]) == 0
    spec = next(yaml.safe_load_all(path.read_text()))
    inputs = spec["root"]["inputDefinitions"]["parameters"]
    assert inputs["max_drop"]["defaultValue"] == 0.02
    assert inputs["max_class_drop"]["defaultValue"] == 0.1
    assert inputs["allow_absent_classes"]["defaultValue"] == "sign"
    assert GatePolicy().allow_absent_classes == ""  # no class may be absent by default
    assert GatePolicy().max_drop == 0.0 and GatePolicy().max_class_drop < 0  # off by default

    # the steps sit in the exit handler's sub-DAG, those after the snapshot in its condition's
    # (data or settings changed): pipeline parameters arrive as channels
    handler = spec["components"]["comp-exit-handler-1"]["dag"]["tasks"]
    (changed,) = [t for t in handler.values() if "triggerPolicy" in t]
    steps = spec["components"][changed["componentRef"]["name"]]["dag"]["tasks"]
    evaluate = steps["evaluate"]
    gate_inputs = ("min_mean_iou", "max_drop", "max_class_drop", "allow_absent_classes")
    for name in (*gate_inputs, "max_class_shift", "eval_split", "model_name", "alias"):
        binding = evaluate["inputs"]["parameters"][name]
        assert binding["componentInputParameter"] == f"pipelinechannel--{name}"
    snapshot = evaluate["inputs"]["artifacts"]["snapshot"]  # its dataset input in MLflow
    assert snapshot["componentInputArtifact"] == "pipelinechannel--snapshot-snapshot"
    # evaluate records which train run it judged (the one train pod's, or the TrainJob's when
    # train_workers > 1); publish checks it
    train_run = evaluate["inputs"]["parameters"]["train_run_id"]["taskOutputParameter"]
    branches = steps[train_run["producerTask"]]["componentRef"]["name"]
    oneof = spec["components"][branches]["dag"]["outputs"]["parameters"]
    selectors = oneof[train_run["outputParameterKey"]]["valueFromOneof"]["parameterSelectors"]
    assert {s["outputParameterKey"] for s in selectors} == {
        "pipelinechannel--train-Output",
        "pipelinechannel--launch-train-Output",
    }
    outputs = spec["components"][evaluate["componentRef"]["name"]]["outputDefinitions"]
    assert {"metrics", "report", "per_image"} <= set(outputs["artifacts"])
    assert outputs["artifacts"]["report"]["artifactType"]["schemaTitle"] == "system.HTML"
    assert set(outputs["parameters"]) == {"Output"}  # dsl.If reads the sole Output

    dags = [spec["components"][t["componentRef"]["name"]].get("dag", {}) for t in steps.values()]
    (publish,) = [dag["tasks"]["publish"] for dag in dags if "publish" in dag.get("tasks", {})]
    dataset = publish["inputs"]["artifacts"]["dataset"]
    assert dataset["componentInputArtifact"] == "pipelinechannel--preprocess-dataset"
