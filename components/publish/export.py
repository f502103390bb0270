"""Copy a SavedModel to `<export_root>/<model>/<version>/`, atomically, with a `_SUCCESS` marker."""

from __future__ import annotations

import os
import shutil

SUCCESS_MARKER = "_SUCCESS"


def export_version(model_dir: str, export_root: str, model_name: str, version: str) -> str:
    """Copy `model_dir` to its versioned folder; readers trust only folders with `_SUCCESS`."""
    if "://" in export_root:
        raise NotImplementedError(f"remote export roots are not supported yet: {export_root}")
    target = os.path.join(os.path.abspath(export_root), model_name, str(version))
    if os.path.exists(os.path.join(target, SUCCESS_MARKER)):
        return target  # already published: publishing is idempotent
    staging = f"{target}.tmp-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(model_dir, staging)
    shutil.rmtree(target, ignore_errors=True)  # a half-written folder from a crashed attempt
    os.replace(staging, target)
    with open(os.path.join(target, SUCCESS_MARKER), "w"):
        pass
    return target
