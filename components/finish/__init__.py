"""Finish step: the pipeline run's headline on its MLflow parent run; no step left RUNNING."""
