"""A Kubeflow Pipelines cluster: compile, submit, schedule, runs; Vertex AI training."""
