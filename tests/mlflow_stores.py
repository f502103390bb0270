"""New MLflow SQLite stores for tests, copied from the session's migrated template."""

from __future__ import annotations

import shutil
from pathlib import Path


def copy_store(template: Path, path: Path) -> str:
    """A new SQLite store at `path`, copied from the template (conftest's
    `mlflow_db_template`); returns its URI."""
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, path)
    return f"sqlite:///{path}"
