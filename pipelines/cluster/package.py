"""Compile the pipeline into a YAML package for a Kubeflow Pipelines cluster."""

from __future__ import annotations

from pathlib import Path

from pipelines.cluster.vertex import VertexTraining


def compile_for_cluster(
    output: str | Path,
    registry: str | None = None,
    tag: str | None = None,
    defaults: dict[str, object] | None = None,
    gpu_node_selector: dict[str, str] | None = None,
    vertex: VertexTraining | None = None,
) -> Path:
    """Write the cluster pipeline to `output`; images under `registry` (or $SEGPIPE_REGISTRY).

    `defaults` become the compiled parameters' defaults. Nothing secret is compiled in: the
    MLflow Secret is referenced by name (the `mlflow_secret` parameter), never by value.
    `vertex`: the train step as a Vertex AI CustomJob (see pipelines/cluster/vertex.py).
    """
    from kfp import compiler

    from pipelines.images import cluster_registry, step_images
    from pipelines.pipeline import build_pipeline

    images = step_images(cluster_registry(registry), tag)
    pipeline = build_pipeline(
        images, cluster=True, gpu_node_selector=gpu_node_selector, vertex=vertex
    )
    path = Path(output)
    compiler.Compiler().compile(pipeline, str(path), pipeline_parameters=defaults or None)
    return path
