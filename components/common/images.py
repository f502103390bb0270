"""Container image references for the steps, all tagged from one version (never :latest)."""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import version


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
