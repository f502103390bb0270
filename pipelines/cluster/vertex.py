"""The train step as a Vertex AI CustomJob of several replicas."""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass

from components.common.uri_credentials import redact, refuse_credentials


@dataclass(frozen=True)
class VertexTraining:
    """How Vertex AI runs the train step: `replicas` machines alike, worker 0 the chief.

    Vertex sets each replica's TF_CONFIG (chief + workers) and, with
    restart_job_on_worker_restart, restarts every replica when one restarts. The replica
    count is fixed when compiling; a run asking for another `train_workers` is refused.
    """

    replicas: int
    mlflow_tracking_uri: str  # Vertex tasks get no Kubernetes Secret: the URI, no credentials
    machine_type: str = "n1-standard-8"
    accelerator_type: str = ""  # e.g. NVIDIA_L4; "" trains on CPUs
    accelerator_count: int = 1

    def __post_init__(self) -> None:
        if self.replicas < 1:
            raise ValueError(f"train_workers must be >= 1, got {self.replicas}")
        uri = urllib.parse.urlparse(self.mlflow_tracking_uri)
        if uri.scheme not in ("http", "https") or not uri.hostname:
            raise ValueError(
                "Vertex AI needs --mlflow-tracking-uri http(s)://HOST of a server its jobs can "
                f"reach, got {redact(self.mlflow_tracking_uri)!r}"
            )
        refuse_credentials(
            self.mlflow_tracking_uri, "--mlflow-tracking-uri", "the compiled pipeline"
        )

    def train_op(self, train_op):
        """`train_op` run by a Vertex AI CustomJob on `replicas` machines."""
        from google_cloud_pipeline_components.v1.custom_job import (
            create_custom_training_job_from_component,
        )

        accelerator = (
            {"accelerator_type": self.accelerator_type, "accelerator_count": self.accelerator_count}
            if self.accelerator_type
            else {"accelerator_count": 0}
        )
        return create_custom_training_job_from_component(
            train_op,
            display_name="segpipe-train",
            replica_count=self.replicas,
            machine_type=self.machine_type,
            # collective training cannot lose a worker: a restarted replica restarts them all,
            # and they resume from the checkpoint under the pipeline root
            restart_job_on_worker_restart=True,
            env=[{"name": "MLFLOW_TRACKING_URI", "value": self.mlflow_tracking_uri}],
            **accelerator,
        )
