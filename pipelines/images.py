"""Container image references for the steps, all tagged from one version (never :latest)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib.metadata import version

REGISTRY_ENV = "SEGPIPE_REGISTRY"


@dataclass(frozen=True)
class Images:
    """One image per kind of step (see docker/)."""

    beam: str  # preprocess: Apache Beam SDK base, doubles as the Dataflow custom container
    trainer: str  # train and evaluate: TensorFlow GPU base
    runtime: str  # publish: light Python runtime


def step_images(registry: str = "", tag: str | None = None) -> Images:
    """Image references under `registry` (e.g. `us-docker.pkg.dev/proj/repo`), tagged `tag`."""
    tag = tag or version("segpipe")
    prefix = f"{registry.rstrip('/')}/" if registry else ""
    return Images(
        beam=f"{prefix}segpipe-beam:{tag}",
        trainer=f"{prefix}segpipe-trainer:{tag}",
        runtime=f"{prefix}segpipe-runtime:{tag}",
    )


def cluster_registry(registry: str | None = None) -> str:
    """`registry`, else $SEGPIPE_REGISTRY (read now, not at import); an error when neither is set.

    A cluster pulls images from a registry: a bare `segpipe-trainer:0.1.0` would not resolve.
    """
    chosen = registry or os.environ.get(REGISTRY_ENV, "")
    if not chosen.strip():
        raise ValueError(
            "no image registry: pass --registry (e.g. us-docker.pkg.dev/PROJECT/REPO) or set "
            f"{REGISTRY_ENV}; the images are built and pushed there with `make push REGISTRY=...`"
        )
    return chosen.strip()
