"""Adding a setting is one edit: its field. A copy of the code with one new TrainConfig field
shows it in every interface (docs/architecture.md, "Adding a setting")."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
NEW_SETTING = (
    "    label_smoothing: float = setting(\n"
    '        0.0, "soften the one-hot targets by this much", at_least=0, below=1\n'
    "    )\n"
)


def _with_new_setting(root: Path) -> Path:
    """components/ and pipelines/ copied under `root`, TrainConfig given one more field."""
    for package in ("components", "pipelines"):
        shutil.copytree(
            REPO / package, root / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    config = root / "components" / "common" / "settings" / "config.py"
    text = config.read_text()
    anchor = text.index("    def __post_init__", text.index("class TrainConfig"))
    config.write_text(text[:anchor] + NEW_SETTING + "\n" + text[anchor:])
    return root


def _run(root: Path, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(root), "COLUMNS": "200"}
    done = subprocess.run(
        [sys.executable, *args], cwd=root, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_one_new_field_reaches_every_interface(tmp_path):
    root = _with_new_setting(tmp_path)
    # segpipe params: listed with its type, default and help
    params = _run(root, "-m", "pipelines.cli", "params")
    (line,) = [line for line in params.splitlines() if " label_smoothing " in f" {line} "]
    assert "float" in line and "soften the one-hot targets" in line
    # the step's CLI flag, checked where it enters
    assert "--label-smoothing" in _run(root, "-m", "components.train", "--help")
    # the compiled pipeline: a typed, described input wired to the train task, which has it
    _run(root, "-m", "pipelines.cli", "compile", "-o", "p.yaml", "--registry", "r", "--tag", "1")
    spec = next(yaml.safe_load_all((root / "p.yaml").read_text()))
    pipeline_input = spec["root"]["inputDefinitions"]["parameters"]["label_smoothing"]
    assert pipeline_input["parameterType"] == "NUMBER_DOUBLE"
    assert pipeline_input["defaultValue"] == 0.0
    assert "soften the one-hot targets" in pipeline_input["description"]
    train = spec["components"]["comp-train"]
    assert "label_smoothing" in train["inputDefinitions"]["parameters"]
    source = spec["deploymentSpec"]["executors"]["exec-train"]["container"]["command"][-1]
    assert "label_smoothing: float" in source  # the function kfp runs in the task takes it
    # the value reaches the train step's config, as the task builds it (and so the MLflow
    # params, which are that config's fields)
    check = (
        "from components.common.settings.step_component import from_inputs\n"
        "from components.common.settings.config import TrainConfig\n"
        "import dataclasses\n"
        "inputs = {**dataclasses.asdict(TrainConfig()), 'label_smoothing': 0.1}\n"
        "print(from_inputs(TrainConfig, inputs).label_smoothing)\n"
    )
    assert _run(root, "-c", check).strip() == "0.1"
