"""Kubeflow Trainer v2.3 manifests: segpipe's TrainingRuntime and its multi-worker TrainJobs."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

from components.common.pods import ACCELERATOR_TAINTS, MLFLOW_CLIENT_LABEL
from components.train import cluster_env

API_GROUP = "trainer.kubeflow.org"
API_VERSION = "v1alpha1"
PLURAL = "trainjobs"
RUNTIME_NAME = "segpipe-tensorflow"
# Trainer applies a TrainJob's `trainer` fields to the container `node` of the replicated job
# labelled as the trainer step; JobSet names that job's pods <jobset>-node-0-<index>.
REPLICATED_JOB = "node"
CONTAINER = "node"
WORKER_PORT = 2222
MAX_RESTARTS = 3  # JobSet recreates all workers together this many times, then fails
ENTRY_POINT = ["python3", "-m", "components.train"]  # as the single-pod train step runs it
PATCH_MANAGER = "segpipe.io/launcher"
RUN_ANNOTATION = "segpipe.io/pipeline-run-id"
# pod labels that JobSet and the Job controller set: how the launcher finds the chief's pod
JOBSET_NAME_LABEL = "jobset.sigs.k8s.io/jobset-name"
REPLICATED_JOB_LABEL = "jobset.sigs.k8s.io/replicatedjob-name"
COMPLETION_INDEX_LABEL = "batch.kubernetes.io/job-completion-index"


def job_name(pipeline_run_id: str) -> str:
    """The TrainJob of one pipeline run: the same for every retry of its train step.

    Hashed, so any run id gives a valid name short enough for the pods' DNS names.
    """
    digest = hashlib.sha256(pipeline_run_id.encode()).hexdigest()[:12]
    return f"segpipe-train-{digest}"


def _downward(label: str) -> dict:
    return {"valueFrom": {"fieldRef": {"fieldPath": f"metadata.labels['{label}']"}}}


def training_runtime(namespace: str = "") -> dict:
    """The TrainingRuntime every segpipe TrainJob refers to (docker/trainingruntime.yaml).

    Plain ML policy (no torch/mpi/jax): `numNodes` pods in one Indexed Job, each building its
    TF_CONFIG from its index and the JobSet's DNS names (components/train/cluster_env.py).
    A failed pod fails its Job at once (backoffLimit 0) and JobSet then recreates every
    worker together, up to MAX_RESTARTS times: collective training cannot lose one worker.
    """
    metadata: dict = {"name": RUNTIME_NAME, "labels": {f"{API_GROUP}/framework": "tensorflow"}}
    if namespace:
        metadata["namespace"] = namespace
    container = {
        "name": CONTAINER,
        # a placeholder: every segpipe TrainJob names the trainer image of its pipeline
        "image": "segpipe-trainer",
        "command": ENTRY_POINT,
        "ports": [{"name": "tf-worker", "containerPort": WORKER_PORT, "protocol": "TCP"}],
        "env": [
            {"name": cluster_env.JOBSET_ENV, **_downward(JOBSET_NAME_LABEL)},
            {"name": cluster_env.REPLICATED_JOB_ENV, **_downward(REPLICATED_JOB_LABEL)},
            {"name": cluster_env.PORT_ENV, "value": str(WORKER_PORT)},
        ],
        "securityContext": {"allowPrivilegeEscalation": False},
    }
    pod_spec = {
        "restartPolicy": "Never",
        "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001},
        "tolerations": [
            {"key": taint, "operator": "Exists", "effect": "NoSchedule"}
            for taint in ACCELERATOR_TAINTS
        ],
        "containers": [container],
    }
    job = {
        "name": REPLICATED_JOB,
        "replicas": 1,
        "template": {
            "metadata": {"labels": {f"{API_GROUP}/trainjob-ancestor-step": "trainer"}},
            "spec": {
                "completionMode": "Indexed",
                "backoffLimit": 0,
                "template": {
                    "metadata": {"labels": dict([MLFLOW_CLIENT_LABEL])},
                    "spec": pod_spec,
                },
            },
        },
    }
    return {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": "TrainingRuntime",
        "metadata": metadata,
        "spec": {
            "mlPolicy": {"numNodes": 2},
            "template": {
                "spec": {
                    "failurePolicy": {"maxRestarts": MAX_RESTARTS, "restartStrategy": "Recreate"},
                    "network": {"enableDNSHostnames": True, "publishNotReadyAddresses": True},
                    "replicatedJobs": [job],
                }
            },
        },
    }


def secret_env(secret: str, required: Mapping[str, str], optional: Mapping[str, str]) -> list:
    """Env vars read from keys of the Secret `secret` (by reference: no value in the manifest)."""

    def ref(key: str, variable: str, is_optional: bool) -> dict:
        selector = {"name": secret, "key": key, "optional": is_optional}
        return {"name": variable, "valueFrom": {"secretKeyRef": selector}}

    return [ref(k, v, False) for k, v in required.items()] + [
        ref(k, v, True) for k, v in optional.items()
    ]


def resources(cpu: str, memory: str, accelerator: str, count: int) -> dict:
    """Per-worker requests and limits, as the single-pod train task gets them."""
    limits: dict[str, object] = {"memory": memory}
    if count:
        limits[accelerator] = count
    return {"requests": {"cpu": cpu, "memory": memory}, "limits": limits}


def train_job(
    pipeline_run_id: str,
    *,
    image: str,
    args: Sequence[str],
    workers: int,
    env: Sequence[dict] = (),
    resources_per_node: dict | None = None,
    node_selector: Mapping[str, str] | None = None,
    namespace: str = "",
) -> dict:
    """The TrainJob that trains one pipeline run on `workers` pods of segpipe's runtime."""
    if workers < 2:
        raise ValueError(f"a TrainJob is for 2 or more workers, got {workers}")
    metadata: dict = {
        "name": job_name(pipeline_run_id),
        "labels": {"app.kubernetes.io/part-of": "segpipe"},
        "annotations": {RUN_ANNOTATION: pipeline_run_id},
    }
    if namespace:
        metadata["namespace"] = namespace
    trainer: dict = {
        "image": image,
        "command": ENTRY_POINT,
        "args": list(args),
        "numNodes": workers,
        "env": [{"name": cluster_env.WORKERS_ENV, "value": str(workers)}, *env],
    }
    if resources_per_node:
        trainer["resourcesPerNode"] = resources_per_node
    spec: dict = {
        "runtimeRef": {"apiGroup": API_GROUP, "kind": "TrainingRuntime", "name": RUNTIME_NAME},
        "trainer": trainer,
    }
    if node_selector:  # runtimePatches is new in Trainer v2.3: sent only when needed
        pod_patch = {"spec": {"nodeSelector": dict(node_selector)}}
        job_patch = {"name": REPLICATED_JOB, "template": {"spec": {"template": pod_patch}}}
        spec["runtimePatches"] = [
            {
                "manager": PATCH_MANAGER,
                "trainingRuntimeSpec": {"template": {"spec": {"replicatedJobs": [job_patch]}}},
            }
        ]
    return {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": "TrainJob",
        "metadata": metadata,
        "spec": spec,
    }


def chief_pod_selector(name: str) -> str:
    """Label selector of worker 0's pods (one per attempt) of TrainJob `name`."""
    return f"{JOBSET_NAME_LABEL}={name},{COMPLETION_INDEX_LABEL}=0"


def condition(train_job: dict) -> tuple[str, str] | None:
    """("Complete" | "Failed", message) once the TrainJob has finished, else None."""
    for entry in train_job.get("status", {}).get("conditions", []):
        if entry.get("type") in ("Complete", "Failed") and entry.get("status") == "True":
            return entry["type"], entry.get("message", "")
    return None
