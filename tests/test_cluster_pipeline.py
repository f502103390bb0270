"""The pipeline as compiled for a cluster: caching, retry, resources, GPU node, MLflow Secret."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipelines.cli.main import main

SENTINEL = "s3cr3t-7f2a9b"


def _compile(tmp_path: Path, *extra: str) -> tuple[dict, dict, str]:
    path = tmp_path / "pipeline.yaml"
    assert main(["compile", "-o", str(path), "--tag", "1.2.3", *extra]) == 0
    text = path.read_text()
    spec, platform = yaml.safe_load_all(text)
    return spec, platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"], text


@pytest.fixture
def cluster_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[dict, dict, str]:
    # Secrets in the compiling machine's environment must not leak into the package.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"https://user:{SENTINEL}@mlflow.example.com")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", SENTINEL)
    monkeypatch.setenv("SEGPIPE_KFP_TOKEN", SENTINEL)
    selector = "cloud.google.com/gke-accelerator=nvidia-l4"
    return _compile(tmp_path, "--registry", "reg.example/t", "--gpu-node-selector", selector)


def _tasks(spec: dict) -> dict[str, dict]:
    """Every task by name, the ones inside the gate's condition included."""
    tasks = dict(spec["root"]["dag"]["tasks"])
    for component in spec["components"].values():
        tasks.update(component.get("dag", {}).get("tasks", {}))
    return tasks


def test_caching_is_on_for_preprocess_only_off_for_evaluate_and_publish(cluster_yaml):
    tasks = _tasks(cluster_yaml[0])
    assert tasks["preprocess"]["cachingOptions"] == {"enableCache": True}
    assert tasks["evaluate"]["cachingOptions"] == {}  # protobuf JSON omits False
    assert tasks["publish"]["cachingOptions"] == {}
    assert tasks["train"]["retryPolicy"]["maxRetryCount"] == 3


def test_train_requests_cpu_memory_and_gpus_from_pipeline_parameters_with_a_memory_limit(
    cluster_yaml,
):
    spec = cluster_yaml[0]
    executors = spec["deploymentSpec"]["executors"]
    resources = executors["exec-train"]["container"]["resources"]
    channel = "{{$.inputs.parameters['pipelinechannel--%s']}}"
    assert resources == {
        "resourceCpuRequest": channel % "train_cpu",
        "resourceMemoryRequest": channel % "train_memory",
        "resourceMemoryLimit": channel % "train_memory",  # a leak ends in this pod, not others
        "accelerator": {
            "resourceType": channel % "train_accelerator",
            "resourceCount": channel % "train_gpus",
        },
    }
    for name in ("exec-preprocess", "exec-evaluate", "exec-publish"):
        assert "resources" not in executors[name]["container"]
    inputs = spec["root"]["inputDefinitions"]["parameters"]
    assert inputs["train_cpu"]["defaultValue"] == "4"
    assert inputs["train_memory"]["defaultValue"] == "16Gi"
    assert inputs["train_accelerator"]["defaultValue"] == "nvidia.com/gpu"
    assert inputs["train_gpus"]["defaultValue"] == 1


def test_only_train_goes_to_an_accelerator_node(cluster_yaml):
    platform = cluster_yaml[1]
    assert platform["exec-train"]["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
        {"key": "google.com/tpu", "operator": "Exists", "effect": "NoSchedule"},
    ]
    assert platform["exec-train"]["nodeSelector"] == {
        "labels": {"cloud.google.com/gke-accelerator": "nvidia-l4"}
    }
    for name in ("exec-preprocess", "exec-evaluate", "exec-publish"):
        assert "tolerations" not in platform[name] and "nodeSelector" not in platform[name]


def test_every_step_gets_mlflow_settings_from_the_secret_named_by_a_parameter(cluster_yaml):
    spec, platform, _ = cluster_yaml
    for name in (
        "exec-snapshot",
        "exec-preprocess",
        "exec-train",
        "exec-launch-train",
        "exec-evaluate",
        "exec-publish",
        "exec-finish",
    ):
        required, optional = platform[name]["secretAsEnv"]
        assert required["keyToEnv"] == [
            {"secretKey": "tracking_uri", "envVar": "MLFLOW_TRACKING_URI"}
        ]
        assert required["optional"] is False
        assert {m["envVar"] for m in optional["keyToEnv"]} == {
            "MLFLOW_TRACKING_USERNAME",
            "MLFLOW_TRACKING_PASSWORD",
            "MLFLOW_TRACKING_TOKEN",
        }
        assert optional["optional"] is True
        source = required["secretNameParameter"]["componentInputParameter"]
        # the steps sit in the exit handler's sub-DAG, those after the snapshot in its
        # condition's: each receives the parameter as a channel; finish, the exit task, reads the
        # pipeline's own parameter
        assert source == (
            "mlflow_secret" if name == "exec-finish" else "pipelinechannel--mlflow_secret"
        )
    handler = spec["root"]["dag"]["tasks"]["exit-handler-1"]
    wired = handler["inputs"]["parameters"]["pipelinechannel--mlflow_secret"]
    assert wired == {"componentInputParameter": "mlflow_secret"}
    default = spec["root"]["inputDefinitions"]["parameters"]["mlflow_secret"]["defaultValue"]
    assert default == "segpipe-mlflow"


def test_every_step_carries_the_label_the_mlflow_network_policy_admits(cluster_yaml):
    platform = cluster_yaml[1]
    policy = next(
        d
        for d in yaml.safe_load_all((Path(__file__).parents[1] / "docker/mlflow.yaml").read_text())
        if d["kind"] == "NetworkPolicy"
    )
    (rule,) = policy["spec"]["ingress"]
    (source,) = rule["from"]
    admitted = source["podSelector"]["matchLabels"]
    for name in ("exec-snapshot", "exec-preprocess", "exec-train", "exec-launch-train"):
        assert platform[name]["podMetadata"]["labels"] == admitted
    assert platform["exec-evaluate"]["podMetadata"]["labels"] == admitted
    assert platform["exec-publish"]["podMetadata"]["labels"] == admitted
    assert platform["exec-finish"]["podMetadata"]["labels"] == admitted


def test_no_secret_value_is_compiled_in(cluster_yaml):
    spec, _, text = cluster_yaml
    assert SENTINEL not in text
    assert "mlflow.example.com" not in text
    for executor in spec["deploymentSpec"]["executors"].values():
        assert "env" not in executor["container"]


def test_secret_name_and_resources_can_be_set_at_compile_time(tmp_path: Path):
    params = ["--param", "mlflow_secret=team-mlflow", "--param", "train_gpus=4"]
    spec, _, _ = _compile(tmp_path, "--registry", "r.example", *params)
    inputs = spec["root"]["inputDefinitions"]["parameters"]
    assert inputs["mlflow_secret"]["defaultValue"] == "team-mlflow"
    assert inputs["train_gpus"]["defaultValue"] == 4


def test_compiling_for_a_cluster_needs_a_registry_read_at_call_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.delenv("SEGPIPE_REGISTRY", raising=False)
    with pytest.raises(SystemExit, match="--registry .* or set SEGPIPE_REGISTRY"):
        main(["compile", "-o", str(tmp_path / "p.yaml")])
    assert not (tmp_path / "p.yaml").exists()

    monkeypatch.setenv("SEGPIPE_REGISTRY", "env.example/team/")  # set after import
    spec, _, _ = _compile(tmp_path)
    images = {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()}
    assert images == {f"env.example/team/segpipe-{k}:1.2.3" for k in ("beam", "trainer", "runtime")}


def test_the_local_pipeline_carries_no_cluster_settings(tmp_path: Path):
    """kfp.local only warns about resources and never reads the platform spec: leave both out."""
    from kfp import compiler

    from pipelines.images import step_images
    from pipelines.pipeline import build_pipeline

    path = tmp_path / "local.yaml"
    compiler.Compiler().compile(build_pipeline(step_images()), str(path))
    (spec,) = yaml.safe_load_all(path.read_text())  # no second (platform) document
    for executor in spec["deploymentSpec"]["executors"].values():
        assert "resources" not in executor["container"]
    # nothing preempts a kfp.local task: a retry would only repeat an error after minutes
    assert "retryPolicy" not in _tasks(spec)["train"]


def test_local_runs_refuse_cluster_only_parameters(tmp_path: Path):
    with pytest.raises(SystemExit, match="train_gpus only takes effect on a cluster"):
        main(["run", "--workdir", str(tmp_path), "--param", "train_gpus=2"])


def test_what_a_person_looks_at_is_a_typed_visual_artifact_in_the_kfp_ui(cluster_yaml):
    spec = cluster_yaml[0]

    def outputs(step: str) -> dict[str, str]:
        artifacts = spec["components"][f"comp-{step}"]["outputDefinitions"]["artifacts"]
        return {name: a["artifactType"]["schemaTitle"] for name, a in artifacts.items()}

    assert outputs("snapshot") == {
        "snapshot": "system.Dataset",  # the manifest; its status and counts in its metadata
        "report": "system.Markdown",  # what changed since the champion's data
    }
    assert outputs("preprocess") == {
        "dataset": "system.Dataset",
        "report": "system.Markdown",  # the data statistics
        "counts": "system.Metrics",  # inputs, rejects, examples per split
    }
    assert outputs("train") == {"model": "system.Model", "figures": "system.Metrics"}
    assert outputs("evaluate") == {
        "metrics": "system.Metrics",  # the scores, the gate's reason in its metadata
        "report": "system.HTML",  # the evaluation report
        "per_image": "system.Dataset",
        "confusion": "system.ClassificationMetrics",  # shown as a confusion matrix
    }
    assert outputs("publish") == {"model_card": "system.Markdown"}
    assert outputs("finish") == {"summary": "system.Markdown"}  # the run's headline
