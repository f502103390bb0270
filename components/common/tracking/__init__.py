"""MLflow: step and pipeline runs, tracking outages, the model registry, lineage between runs."""
