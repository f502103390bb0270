"""Paths that may be local or gs://, through Beam's FileSystems."""

from __future__ import annotations

import json
import os


def join(base: str, *parts: str) -> str:
    """Join path parts under a local or gs:// base."""
    from apache_beam.io.filesystems import FileSystems

    return FileSystems.join(base, *parts)


def write_json(path: str, payload: object) -> None:
    """Write `payload` as indented JSON to a local or gs:// path."""
    from apache_beam.io.filesystems import FileSystems

    data = json.dumps(payload, indent=2, sort_keys=True).encode("utf-8")
    if "://" not in path:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with FileSystems.create(path) as handle:
        handle.write(data)


def read_json(path: str) -> object:
    """Read JSON from a local or gs:// path."""
    return json.loads(read_text(path))


def glob(pattern: str) -> list[str]:
    """Paths matching a local or gs:// glob, sorted."""
    from apache_beam.io.filesystems import FileSystems

    matches = FileSystems.match([pattern])[0].metadata_list
    return sorted(m.path for m in matches)


def exists(path: str) -> bool:
    """Whether a local or gs:// file exists."""
    from apache_beam.io.filesystems import FileSystems

    return FileSystems.exists(path)


def read_text(path: str) -> str:
    """A local or gs:// file's text (UTF-8)."""
    from apache_beam.io.filesystems import FileSystems

    with FileSystems.open(path) as handle:
        return handle.read().decode("utf-8")
