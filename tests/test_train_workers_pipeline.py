"""train_workers in the compiled pipelines: a Kubeflow Trainer TrainJob branch, or Vertex AI."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipelines.cli.main import main

REGISTRY = "reg.example/t"
TRAINER = f"{REGISTRY}/segpipe-trainer:1.2.3"


def _compile(tmp_path: Path, *extra: str) -> list[dict]:
    path = tmp_path / "pipeline.yaml"
    args = ["compile", "-o", str(path), "--tag", "1.2.3", "--registry", REGISTRY, *extra]
    assert main([*args, "--param", "train_workers=4"]) == 0
    return list(yaml.safe_load_all(path.read_text()))


def _tasks(spec: dict) -> dict[str, dict]:
    tasks = dict(spec["root"]["dag"]["tasks"])
    for component in spec["components"].values():
        tasks.update(component.get("dag", {}).get("tasks", {}))
    return tasks


def test_four_workers_compile_to_a_train_job_branch_beside_the_one_pod_train(tmp_path):
    selector = "cloud.google.com/gke-accelerator=nvidia-l4"
    spec, platform = _compile(tmp_path, "--gpu-node-selector", selector)
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert spec["root"]["inputDefinitions"]["parameters"]["train_workers"]["defaultValue"] == 4

    tasks = _tasks(spec)
    launch, train = tasks["launch-train"], tasks["train"]
    assert launch["taskInfo"]["name"] == "train (TrainJob)"
    assert launch["retryPolicy"]["maxRetryCount"] == train["retryPolicy"]["maxRetryCount"] == 3
    constants = {k: v.get("runtimeValue", {}).get("constant") for k, v in
                 launch["inputs"]["parameters"].items()}  # fmt: skip
    assert constants["trainer_image"] == TRAINER  # the workers run the train step's image
    assert constants["node_selector"] == selector
    channels = {
        k: v.get("componentInputParameter") for k, v in launch["inputs"]["parameters"].items()
    }
    for name in ("train_workers", "train_cpu", "train_memory", "train_gpus", "mlflow_secret"):
        assert channels[name] == f"pipelinechannel--{name}"

    # branches on the run's train_workers: the one-pod train when 1, the TrainJob otherwise
    conditions = {
        t["taskInfo"]["name"]: t["triggerPolicy"]["condition"]
        for t in tasks.values()
        if "triggerPolicy" in t and t["taskInfo"]["name"] in ("one-train-pod", "train-workers")
    }
    assert set(conditions) == {"one-train-pod", "train-workers"}
    assert "train_workers" in conditions["one-train-pod"]

    # the launcher waits on a CPU: accelerators and their node only for the one-pod train
    exec_launch = spec["deploymentSpec"]["executors"]["exec-launch-train"]["container"]
    assert exec_launch["image"] == TRAINER and "resources" not in exec_launch
    assert (
        "accelerator" in spec["deploymentSpec"]["executors"]["exec-train"]["container"]["resources"]
    )
    assert "tolerations" not in executors["exec-launch-train"]
    assert "nodeSelector" not in executors["exec-launch-train"]
    assert executors["exec-launch-train"]["secretAsEnv"][0]["keyToEnv"] == [
        {"secretKey": "tracking_uri", "envVar": "MLFLOW_TRACKING_URI"}
    ]

    # evaluate and publish take whichever branch ran
    evaluate = tasks["evaluate"]["inputs"]
    assert evaluate["artifacts"]["model"]["taskOutputArtifact"]["producerTask"].startswith(
        "condition-branches"
    )
    assert evaluate["parameters"]["train_run_id"]["taskOutputParameter"]["producerTask"].startswith(
        "condition-branches"
    )


def test_the_vertex_variant_runs_train_as_a_custom_job_of_train_workers_replicas(tmp_path):
    (spec,) = _compile(
        tmp_path,
        "--train-engine",
        "vertex",
        "--mlflow-tracking-uri",
        "https://mlflow.example.com",
        "--vertex-accelerator",
        "NVIDIA_L4:2",
        "--vertex-machine-type",
        "g2-standard-24",
    )  # fmt: skip — one document: no Kubernetes platform spec for Vertex
    train = spec["components"]["comp-train"]["inputDefinitions"]["parameters"]
    pools = train["worker_pool_specs"]["defaultValue"]
    assert [pool["replica_count"] for pool in pools] == [1, 3]  # chief + 3 workers = 4
    for pool in pools:
        assert pool["container_spec"]["image_uri"] == TRAINER
        assert pool["machine_spec"] == {
            "machine_type": "g2-standard-24",
            "accelerator_type": "NVIDIA_L4",
            "accelerator_count": 2,
        }
        assert {"name": "MLFLOW_TRACKING_URI", "value": "https://mlflow.example.com"} in pool[
            "container_spec"
        ]["env"]
    assert train["restart_job_on_worker_restart"]["defaultValue"] is True
    # the replicas check the run's train_workers against their TF_CONFIG (the steps sit in
    # the exit handler's sub-DAG, which receives the parameter as a channel)
    wired = _tasks(spec)["train"]["inputs"]["parameters"]["train_workers"]
    assert wired == {"componentInputParameter": "pipelinechannel--train_workers"}
    for executor in spec["deploymentSpec"]["executors"].values():
        env = executor["container"].get("env", [])
        assert {"name": "MLFLOW_TRACKING_URI", "value": "https://mlflow.example.com"} in env


@pytest.mark.parametrize(
    ("uri", "refusal"),
    [
        (None, "needs --mlflow-tracking-uri"),
        ("https://user:pw@mlflow.example.com", "must not hold credentials"),
        ("https://mlflow.example.com/?token=s3cret", r"must not hold credentials \(a query"),
        ("https://mlflow.example.com/#s3cret", "must not hold credentials"),
    ],
)
def test_the_vertex_variant_refuses_a_missing_or_credentialed_mlflow_uri(tmp_path, uri, refusal):
    extra = ["--train-engine", "vertex", *(["--mlflow-tracking-uri", uri] if uri else [])]
    with pytest.raises(SystemExit, match=refusal) as refused:
        _compile(tmp_path, *extra)
    assert "s3cret" not in str(refused.value) and "pw@" not in str(refused.value)
    assert not (tmp_path / "pipeline.yaml").exists()


def test_train_workers_below_one_and_local_runs_with_workers_are_refused(tmp_path):
    with pytest.raises(SystemExit, match="train_workers must be >= 1"):
        main(["compile", "-o", str(tmp_path / "p.yaml"), "--param", "train_workers=0"])
    with pytest.raises(SystemExit, match="train_workers only takes effect on a cluster"):
        main(["run", "--workdir", str(tmp_path), "--param", "train_workers=2"])


def test_a_replica_count_other_than_train_workers_is_refused():
    import tensorflow as tf

    from components.train.distributed import check_worker_count

    one = tf.distribute.get_strategy()
    check_worker_count(one, 1)
    check_worker_count(one, 0)  # the CLI: as many as TF_CONFIG names
    with pytest.raises(ValueError, match="train_workers is 4 but TF_CONFIG names 1"):
        check_worker_count(one, 4)
