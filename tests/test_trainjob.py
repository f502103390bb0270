"""The TrainJob and TrainingRuntime segpipe writes, read strictly against Kubeflow Trainer's CRDs.

The CRDs are upstream's (../shared/k8s, Trainer v2.3.0); a property the schema does not list is
an error, as under the API server's strict field validation. CEL rules are not evaluated.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import yaml
from crd_schemas import crd_errors, needs_crds

from components.common.settings.config import RunContext, TrainConfig

REPO = Path(__file__).resolve().parents[1]


def _errors(crd_file: str, manifest: dict) -> list[str]:
    return crd_errors(crd_file, manifest, "v1alpha1")


def _four_worker_job(node_selector=(("cloud.google.com/gke-accelerator", "nvidia-l4"),)):
    from components.train.launcher import Workers, train_job_manifest

    workers = Workers(
        4, "us-docker.pkg.dev/p/r/segpipe-trainer:0.1.0", cpu="8", memory="32Gi",
        accelerators=1, node_selector=node_selector, mlflow_secret="team-mlflow",
    )  # fmt: skip
    config = TrainConfig(epochs=30, batch_size=32, checkpoint_root="gs://bucket/ckpt")
    return train_job_manifest(
        "gs://bucket/root/run-7/preprocess/dataset", config, workers,
        RunContext("segpipe", "0b6e7c1a-58a2-4c44-9d53-2f1e0b4b1f3e"), "gs://bucket/root",
    )  # fmt: skip


@needs_crds
def test_the_shipped_runtime_is_the_module_s_and_valid():
    from components.train.trainjob import training_runtime

    runtime, role, binding = yaml.safe_load_all((REPO / "docker/trainingruntime.yaml").read_text())
    assert runtime == training_runtime("PIPELINE_NAMESPACE")
    assert _errors("trainer.kubeflow.org_trainingruntimes.yaml", runtime) == []
    assert {rule["resources"][0] for rule in role["rules"]} == {"trainjobs", "pods", "pods/log"}
    assert binding["roleRef"]["name"] == role["metadata"]["name"]

    spec = runtime["spec"]["template"]["spec"]
    assert spec["failurePolicy"]["maxRestarts"] >= 1  # the JobSet restarts all workers
    (job,) = spec["replicatedJobs"]
    assert job["template"]["spec"]["backoffLimit"] == 0  # so one failed pod restarts them all
    assert job["template"]["spec"]["completionMode"] == "Indexed"  # JOB_COMPLETION_INDEX
    pod = job["template"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == 10001 and pod["securityContext"]["runAsNonRoot"]


@needs_crds
def test_a_four_worker_train_job_is_valid_and_carries_no_secret():
    job = _four_worker_job()
    assert _errors("trainer.kubeflow.org_trainjobs.yaml", job) == []
    trainer = job["spec"]["trainer"]
    assert trainer["numNodes"] == 4
    assert trainer["image"] == "us-docker.pkg.dev/p/r/segpipe-trainer:0.1.0"
    assert trainer["resourcesPerNode"] == {
        "requests": {"cpu": "8", "memory": "32Gi"},
        "limits": {"memory": "32Gi", "nvidia.com/gpu": 1},
    }
    assert {"name": "SEGPIPE_WORKERS", "value": "4"} in trainer["env"]
    secrets = [e["valueFrom"]["secretKeyRef"] for e in trainer["env"] if "valueFrom" in e]
    assert {s["name"] for s in secrets} == {"team-mlflow"}
    assert [s["key"] for s in secrets if not s["optional"]] == ["tracking_uri"]
    assert all("value" not in e for e in trainer["env"] if e["name"].startswith("MLFLOW"))
    patch = job["spec"]["runtimePatches"][0]["trainingRuntimeSpec"]["template"]["spec"]
    pod = patch["replicatedJobs"][0]["template"]["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-l4"}


def test_workers_run_the_train_cli_with_the_step_s_settings():
    from components.train.__main__ import main  # noqa: F401 - the entry point exists
    from components.train.trainjob import ENTRY_POINT, training_runtime

    job = _four_worker_job()
    trainer = job["spec"]["trainer"]
    runtime_container = training_runtime()["spec"]["template"]["spec"]["replicatedJobs"][0][
        "template"
    ]["spec"]["template"]["spec"]["containers"][0]
    assert trainer["command"] == ENTRY_POINT == runtime_container["command"]
    assert ENTRY_POINT[-2:] == ["-m", "components.train"]

    from components.common.cli import add_config_flags, config_from_flags

    parser = argparse.ArgumentParser()
    for flag in ("--dataset", "--model-dir", "--checkpoint-dir", "--experiment"):
        parser.add_argument(flag)
    for flag in ("--pipeline-run-id", "--model-name", "--alias"):
        parser.add_argument(flag)
    add_config_flags(parser, TrainConfig)
    args = parser.parse_args(trainer["args"])  # the train CLI's own flags, nothing else
    assert config_from_flags(TrainConfig, args) == TrainConfig(
        epochs=30, batch_size=32, checkpoint_root="gs://bucket/ckpt"
    )
    assert args.dataset == "gs://bucket/root/run-7/preprocess/dataset"
    assert args.checkpoint_dir == "gs://bucket/ckpt/0b6e7c1a-58a2-4c44-9d53-2f1e0b4b1f3e/train"
    assert args.pipeline_run_id == "0b6e7c1a-58a2-4c44-9d53-2f1e0b4b1f3e"


def test_the_job_name_is_fixed_by_the_run_and_fits_the_pods_dns_names():
    from components.train.trainjob import REPLICATED_JOB, job_name

    name = job_name("0b6e7c1a-58a2-4c44-9d53-2f1e0b4b1f3e")
    assert name == job_name("0b6e7c1a-58a2-4c44-9d53-2f1e0b4b1f3e") != job_name("other-run")
    assert _four_worker_job()["metadata"]["name"] == name
    hostname = f"{name}-{REPLICATED_JOB}-0-99"
    assert len(hostname) <= 63 and hostname.replace("-", "").isalnum() and hostname.islower()


@needs_crds
def test_strict_reading_catches_fields_of_other_trainer_releases():
    job = _four_worker_job()
    # Trainer v2.1 named the pod changes podTemplateOverrides; v2.3 knows only runtimePatches
    job["spec"]["podTemplateOverrides"] = [{"targetJobs": [{"name": "node"}]}]
    job["spec"]["trainer"]["resourcesPerWorker"] = {}
    errors = _errors("trainer.kubeflow.org_trainjobs.yaml", job)
    assert len(errors) == 2 and all("not allowed" in e for e in errors), errors


@needs_crds
def test_without_node_selector_the_job_needs_no_runtime_patches():
    job = _four_worker_job(node_selector=())
    assert "runtimePatches" not in job["spec"]
    assert _errors("trainer.kubeflow.org_trainjobs.yaml", job) == []


def test_each_pod_builds_its_tf_config_from_its_index_and_the_jobset_dns_names():
    from components.train.cluster_env import jobset_tf_config

    env = {
        "SEGPIPE_WORKERS": "3",
        "SEGPIPE_JOBSET": "segpipe-train-abc",
        "SEGPIPE_REPLICATED_JOB": "node",
        "SEGPIPE_WORKER_PORT": "2222",
        "JOB_COMPLETION_INDEX": "2",
    }
    tf_config = json.loads(jobset_tf_config(env))
    assert tf_config == {
        "cluster": {
            "worker": [f"segpipe-train-abc-node-0-{i}.segpipe-train-abc:2222" for i in range(3)]
        },
        "task": {"type": "worker", "index": 2},
    }
    assert jobset_tf_config({**env, "TF_CONFIG": "{}"}) is None  # Vertex AI sets its own
    assert jobset_tf_config({}) is None  # not a TrainJob pod
    with pytest.raises(ValueError, match="JOB_COMPLETION_INDEX"):
        jobset_tf_config({k: v for k, v in env.items() if k != "JOB_COMPLETION_INDEX"})
    with pytest.raises(ValueError, match="index"):
        jobset_tf_config({**env, "JOB_COMPLETION_INDEX": "3"})


@pytest.mark.parametrize(
    ("dataset", "checkpoint_root", "pipeline_root", "refused"),
    [
        ("/tmp/local/dataset", "gs://b/ckpt", "gs://b/root", "the data set"),
        ("minio://mlpipeline/v2/artifacts/dataset", "", "minio://mlpipeline/v2", "the data set"),
        ("gs://b/root/dataset", "", "minio://mlpipeline/v2", "checkpoints"),
        ("gs://b/root/dataset", "/mnt/ckpt", "gs://b/root", "checkpoints"),
    ],
)
def test_workers_that_could_not_share_their_data_are_refused(
    dataset, checkpoint_root, pipeline_root, refused
):
    from components.train.launcher import Workers, train_job_manifest

    config = TrainConfig(checkpoint_root=checkpoint_root)
    with pytest.raises(ValueError, match=f"share {refused} at .*gs://"):
        run = RunContext("e", "run", "m", "a")
        train_job_manifest(dataset, config, Workers(2, "img"), run, pipeline_root)
