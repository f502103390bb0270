"""What every segpipe pod on a cluster shares: the MLflow Secret's keys, labels, tolerations."""

from __future__ import annotations

# Keys of the MLflow Secret: the tracking URI is required, credentials are per-key optional.
MLFLOW_SECRET_REQUIRED = {"tracking_uri": "MLFLOW_TRACKING_URI"}
MLFLOW_SECRET_OPTIONAL = {
    "username": "MLFLOW_TRACKING_USERNAME",
    "password": "MLFLOW_TRACKING_PASSWORD",
    "token": "MLFLOW_TRACKING_TOKEN",
}
# docker/mlflow.yaml's NetworkPolicy admits only pods with this label to the MLflow server
MLFLOW_CLIENT_LABEL = ("segpipe.io/mlflow-client", "true")
# the taints GKE (and the NVIDIA operator) put on GPU and TPU nodes; tolerating both lets
# train_accelerator pick either kind at run time
ACCELERATOR_TAINTS = ("nvidia.com/gpu", "google.com/tpu")
