"""Content digest of a model folder, so publish can prove it ships the model evaluate scored."""

from __future__ import annotations

import hashlib
import os

CHUNK = 1 << 20


def folder_sha256(folder: str) -> str:
    """sha256 over every file under `folder`: sorted relative paths, each with its bytes' sha256.

    Names and contents both count (a renamed or edited file changes it); timestamps, permissions
    and empty folders do not, so a copy of the folder has the same digest.
    """
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"model folder {folder} does not exist or is not a folder")
    files = []
    for directory, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(directory, name)
            files.append((os.path.relpath(path, folder).replace(os.sep, "/"), path))
    if not files:
        raise ValueError(f"model folder {folder} holds no files")
    digest = hashlib.sha256()
    for relative, path in sorted(files):
        content = hashlib.sha256()
        with open(path, "rb") as handle:
            while chunk := handle.read(CHUNK):
                content.update(chunk)
        # a NUL cannot occur in a path and the hex digest has a fixed length: no ambiguity
        digest.update(f"{relative}\0{content.hexdigest()}\n".encode())
    return digest.hexdigest()
