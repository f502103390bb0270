"""The lean core install: compile, submit and publish without TensorFlow or Beam."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
HEAVY = ("tensorflow", "keras", "apache_beam")

# Compile the pipeline, import every module the publish step uses, read a data set's stats the
# way publish does; then name any heavy package that got imported on the way.
CORE_PATH = """
import sys, tempfile
from pathlib import Path
from pipelines.cli.main import main
import components.publish.component, components.publish.export, components.publish.publisher
import pipelines.cluster.client, pipelines.local.runner  # submit, schedule, runs; run's wiring
from components.publish.publisher import dataset_fingerprint

out = Path(tempfile.mkdtemp())
assert main(["compile", "-o", str(out / "p.yaml"), "--registry", "example.com/r"]) == 0
assert "example.com/r/segpipe-runtime:" in (out / "p.yaml").read_text()
(out / "stats.json").write_text('{"splits": {"train": {"examples": 3}}}')
assert dataset_fingerprint(str(out))[1]["train examples"] == 3
print(sorted({name.split(".")[0] for name in sys.modules} & set(sys.argv[1:])))
"""


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MLFLOW_TRACKING_URI")}
    return {**env, **extra}


def test_compile_and_publish_imports_pull_in_no_tensorflow_or_beam(tmp_path: Path):
    result = subprocess.run(
        [sys.executable, "-c", CORE_PATH, *HEAVY],
        cwd=REPO,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


@pytest.fixture(scope="module")
def core_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with `pip install segpipe` (no extras) from a copy of this checkout."""
    root = tmp_path_factory.mktemp("core-venv")
    source = root / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    for package in ("components", "pipelines"):
        shutil.copytree(
            REPO / package, source / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    subprocess.run([sys.executable, "-m", "venv", str(root / "venv")], check=True, timeout=300)
    python = root / "venv" / "bin" / "python"
    install = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    result = subprocess.run(
        [*install, str(source)], capture_output=True, text=True, timeout=900, env=_clean_env()
    )
    assert result.returncode == 0, f"pip install (core) failed:\n{result.stderr[-4000:]}"
    return python


def _run_core(python: Path, args: list[str], cwd: Path, **env: str):
    return subprocess.run(
        [str(python), *args],
        cwd=cwd,
        env=_clean_env(**env),
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_core_install_has_no_tensorflow_or_beam_and_compiles(core_python: Path, tmp_path: Path):
    probe = "import importlib.util as u, sys; print([m for m in sys.argv[1:] if u.find_spec(m)])"
    result = _run_core(core_python, ["-c", probe, *HEAVY, "sqlalchemy"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"  # not installed at all, not just not imported

    result = _run_core(core_python, ["-c", CORE_PATH, *HEAVY], tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"

    segpipe = str(core_python.parent / "segpipe")
    compiled = subprocess.run(
        [segpipe, "compile", "-o", "p.yaml", "--registry", "example.com/r", "--tag", "t1"],
        cwd=tmp_path,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert compiled.returncode == 0, compiled.stderr
    assert "example.com/r/segpipe-trainer:t1" in (tmp_path / "p.yaml").read_text()


def test_core_install_names_the_extra_a_command_needs(core_python: Path, tmp_path: Path):
    segpipe = str(core_python.parent / "segpipe")
    for command, extra in (("run", "all"), ("predict", "train"), ("sample-data", "preprocess")):
        args = {
            "run": [],
            "predict": ["--model", "m", "--input", "i", "--output", "o"],
            "sample-data": ["out"],
        }[command]
        result = subprocess.run(
            [segpipe, command, *args],
            cwd=tmp_path,
            env=_clean_env(),
            capture_output=True,
            text=True,
        )
        assert result.returncode != 0
        assert f"pip install 'segpipe[{extra}]'" in result.stderr, result.stderr
        assert "Traceback" not in result.stderr

    # The default SQLite store needs full mlflow: a clear refusal, not an ImportError.
    result = _run_core(
        core_python,
        ["-m", "components.publish", "--model-dir", str(tmp_path), "--train-run-id", "r"],
        tmp_path,
    )
    assert result.returncode != 0
    assert "is a database, which this install cannot open" in result.stderr, result.stderr[-2000:]


def _log_fake_model(client, experiment: str, model_dir: Path) -> str:
    """A train run whose `model` artifact (uploaded through the server) is a SavedModel folder."""
    (model_dir / "variables").mkdir(parents=True)
    (model_dir / "saved_model.pb").write_bytes(os.urandom(256))
    (model_dir / "variables" / "variables.index").write_bytes(os.urandom(64))
    run = client.create_run(client.create_experiment(experiment))
    client.log_artifacts(run.info.run_id, str(model_dir), "model")
    client.set_terminated(run.info.run_id)
    return run.info.run_id


def _record_passed_evaluation(uri: str, experiment: str, model_dir: Path, model_name: str):
    """A passed evaluation of `model_dir`, as evaluate records it: publish refuses without one."""
    import mlflow
    from stand_ins import record_evaluation

    from components.common import verdict

    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(experiment)
    record_evaluation(model_dir, "core-pipeline", "none", **{verdict.MODEL_NAME_TAG: model_name})


def test_core_install_publishes_through_a_real_mlflow_server(
    core_python: Path, mlflow_server: str, tmp_path: Path
):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(mlflow_server)
    model_dir = tmp_path / "model"
    train_run_id = _log_fake_model(client, "core-publish", model_dir)
    dataset = tmp_path / "dataset"
    dataset.mkdir()
    stats = json.dumps({"splits": {"train": {"examples": 5}}, "class_names": ["a", "b"]})
    (dataset / "stats.json").write_text(stats)
    _record_passed_evaluation(mlflow_server, "core-publish", model_dir, "core-model")

    args = ["-m", "components.publish", "--model-dir", str(model_dir)]
    args += ["--train-run-id", train_run_id, "--dataset", str(dataset)]
    args += ["--experiment", "core-publish", "--model-name", "core-model"]
    args += ["--export-root", str(tmp_path / "exports")]
    result = _run_core(core_python, args, tmp_path, MLFLOW_TRACKING_URI=mlflow_server)
    assert result.returncode == 0, result.stderr[-4000:]

    version = client.get_model_version_by_alias("core-model", "champion")
    assert version.run_id == train_run_id
    assert version.tags["segpipe.dataset_sha256"] == hashlib.sha256(stats.encode()).hexdigest()
    export = tmp_path / "exports" / "core-model" / version.version
    assert (export / "_SUCCESS").exists() and (export / "MODEL_CARD.md").exists()
    assert (export / "saved_model.pb").read_bytes() == (model_dir / "saved_model.pb").read_bytes()
    (publish_run,) = client.search_runs(
        [client.get_experiment_by_name("core-publish").experiment_id],
        filter_string="tags.`segpipe.step` = 'publish'",
    )
    card = client.download_artifacts(publish_run.info.run_id, "MODEL_CARD.md", str(tmp_path))
    assert "core-model" in Path(card).read_text()  # uploaded through the server

    # The registered version's files, downloaded through the server by the core client (as
    # evaluate does for the champion).
    download = (
        "import sys\n"
        "from mlflow.tracking import MlflowClient\n"
        "from components.common.tracking.registry import alias_version, download_version\n"
        "version = alias_version(MlflowClient(), 'core-model', 'champion')\n"
        "print(download_version(version, sys.argv[1]))\n"
    )
    result = _run_core(
        core_python,
        ["-c", download, str(tmp_path / "downloaded")],
        tmp_path,
        MLFLOW_TRACKING_URI=mlflow_server,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    local = Path(result.stdout.strip().splitlines()[-1])
    assert (local / "saved_model.pb").read_bytes() == (model_dir / "saved_model.pb").read_bytes()
    index = local / "variables" / "variables.index"
    assert index.read_bytes() == (model_dir / "variables" / "variables.index").read_bytes()
