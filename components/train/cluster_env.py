"""TF_CONFIG for a training pod of a Kubeflow Trainer JobSet, from the pod's environment."""

from __future__ import annotations

import json
from collections.abc import Mapping

WORKERS_ENV = "SEGPIPE_WORKERS"  # how many workers; set by the TrainJob segpipe creates
JOBSET_ENV = "SEGPIPE_JOBSET"  # the JobSet's name (downward API, label jobset-name)
REPLICATED_JOB_ENV = "SEGPIPE_REPLICATED_JOB"  # the replicated job (label replicatedjob-name)
PORT_ENV = "SEGPIPE_WORKER_PORT"  # where each worker's TensorFlow server listens
INDEX_ENV = "JOB_COMPLETION_INDEX"  # the pod's index in its Indexed Job (set by Kubernetes)


def jobset_tf_config(env: Mapping[str, str]) -> str | None:
    """The TF_CONFIG of this pod when it is one of a segpipe JobSet's workers, else None.

    JobSet gives each pod the hostname <jobset>-<replicated job>-<job index>-<pod index> in
    the subdomain <jobset>; the runtime has one Job whose pods are the workers, so worker i
    is reached at <jobset>-<replicated job>-0-i.<jobset>. Worker 0 is the chief.
    """
    if WORKERS_ENV not in env or "TF_CONFIG" in env:
        return None
    missing = [
        name for name in (JOBSET_ENV, REPLICATED_JOB_ENV, PORT_ENV, INDEX_ENV) if not env.get(name)
    ]
    if missing:
        raise ValueError(
            f"{WORKERS_ENV} is set but {', '.join(missing)} is not: not a segpipe JobSet pod?"
        )
    workers, index = int(env[WORKERS_ENV]), int(env[INDEX_ENV])
    if not 0 <= index < workers:
        raise ValueError(f"{INDEX_ENV}={index} is not a worker index below {WORKERS_ENV}={workers}")
    jobset, job, port = env[JOBSET_ENV], env[REPLICATED_JOB_ENV], env[PORT_ENV]
    hosts = [f"{jobset}-{job}-0-{i}.{jobset}:{port}" for i in range(workers)]
    return json.dumps({"cluster": {"worker": hosts}, "task": {"type": "worker", "index": index}})
