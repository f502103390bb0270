"""Files at local paths (plain file IO) or gs:// URLs (google-cloud-storage); no Beam needed."""

from __future__ import annotations

import contextlib
import contextvars
import functools
import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from stat import S_ISREG

GCS_PREFIX = "gs://"
_GLOB_CHARS = re.compile(r"[^[*?]*")
# What a gs:// listing asks for: the fields of FileInfo and the next page, nothing else.
_LIST_FIELDS = "items(name,size,generation,crc32c,md5Hash),nextPageToken"
# gs:// listings made inside `remember_listings()`: (bucket, prefix) -> {object name: FileInfo}
_LISTINGS: contextvars.ContextVar[dict | None] = contextvars.ContextVar(
    "segpipe_listings", default=None
)


@dataclass(frozen=True)
class FileInfo:
    """What a listing says about one file, without reading it.

    On gs:// the object's generation and checksums (MD5 is absent on composite objects);
    locally the modification time in nanoseconds.
    """

    path: str
    size: int
    generation: int = 0
    crc32c: str = ""
    md5: str = ""
    mtime_ns: int = 0


def _is_gcs(path: str) -> bool:
    if path.startswith(GCS_PREFIX):
        return True
    if "://" in path:
        raise ValueError(f"{path}: only local paths and gs:// URLs are supported")
    return False


def _split_gcs(path: str) -> tuple[str, str]:
    bucket, _, name = path.removeprefix(GCS_PREFIX).partition("/")
    if not bucket:
        raise ValueError(f"{path}: a gs:// URL needs a bucket name")
    return bucket, name


@functools.lru_cache(maxsize=4)
def _gcs_client(emulator_host: str | None):
    """One client per process (credential lookup is slow); a new one when the emulator moves."""
    from google.cloud import storage

    return storage.Client()


def gcs_client():
    """This process's GCS client (a new one when the emulator moves)."""
    return _gcs_client(os.environ.get("STORAGE_EMULATOR_HOST"))


def _blob(path: str):
    bucket, name = _split_gcs(path)
    return gcs_client().bucket(bucket).blob(name)


def join(base: str, *parts: str) -> str:
    """Join path parts under a local or gs:// base."""
    if not _is_gcs(base):
        return os.path.join(base, *parts)
    path = base
    for part in parts:
        path = f"{path}{part}" if path.endswith("/") else f"{path}/{part}"
    return path


def write_json(path: str, payload: object) -> None:
    """Write `payload` as indented JSON to a local or gs:// path."""
    write_text(path, json.dumps(payload, indent=2, sort_keys=True), "application/json")


def write_text(path: str, text: str, content_type: str = "text/plain") -> None:
    """Write `text` (UTF-8) to a local or gs:// path."""
    if _is_gcs(path):
        _blob(path).upload_from_string(text.encode("utf-8"), content_type=content_type)
        return
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)


def read_json(path: str) -> object:
    """Read JSON from a local or gs:// path."""
    return json.loads(read_text(path))


def read_text(path: str) -> str:
    """A local or gs:// file's text (UTF-8); FileNotFoundError when it is missing."""
    if not _is_gcs(path):
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    from google.api_core.exceptions import NotFound

    try:
        return _blob(path).download_as_bytes().decode("utf-8")
    except NotFound as error:
        raise FileNotFoundError(f"{path} does not exist") from error


def exists(path: str) -> bool:
    """Whether a local or gs:// file exists."""
    return _blob(path).exists() if _is_gcs(path) else os.path.exists(path)


def glob(pattern: str) -> list[str]:
    """Files matching a local or gs:// glob, sorted.

    As in Beam's FileSystems.match: `*` and `?` stay within a folder, `**` crosses folders,
    a pattern without wildcards names one file.
    """
    prefix = _GLOB_CHARS.match(pattern).group(0)
    if prefix == pattern:
        return [pattern] if _is_file(pattern) else []
    regex = _glob_regex(pattern)
    return sorted(path for path in _files_under(prefix) if regex.fullmatch(path))


def _is_file(path: str) -> bool:
    return _blob(path).exists() if _is_gcs(path) else os.path.isfile(path)


def files_under(folder: str) -> list[str]:
    """Every file below a local or gs:// folder, at any depth, sorted (links not followed)."""
    base = folder.rstrip("/")
    if _is_gcs(base):
        bucket, name = _split_gcs(base)
        return sorted(
            info.path for info in _gcs_listing(bucket, f"{name}/" if name else "").values()
        )
    found = []
    for parent, _, names in os.walk(base):
        found += [os.path.join(parent, name) for name in names]
    return sorted(found)


def _files_under(prefix: str) -> Iterator[str]:
    """Every file whose path starts with `prefix`'s folder (local) or with `prefix` (gs://)."""
    if _is_gcs(prefix):
        bucket, name = _split_gcs(prefix)
        for info in _gcs_listing(bucket, name).values():
            yield info.path
        return
    root = os.path.dirname(prefix)
    for folder, _, names in os.walk(root or os.curdir):
        for name in names:
            path = os.path.join(folder, name)
            yield path if root else os.path.relpath(path)


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """A glob as a regular expression: `*`, `?` and `[...]` within one folder, `**` across."""
    parts: list[str] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**", i):
            parts.append(".*")
            i += 2
            continue
        if char == "*":
            parts.append("[^/]*")
        elif char == "?":
            parts.append("[^/]")
        elif char == "[" and (end := pattern.find("]", i + 2)) != -1:
            body = pattern[i + 1 : end].replace("\\", "\\\\")
            parts.append(f"[^{body[1:]}]" if body.startswith("!") else f"[{body}]")
            i = end + 1
            continue
        else:
            parts.append(re.escape(char))
        i += 1
    return re.compile("".join(parts), re.DOTALL)


@contextlib.contextmanager
def remember_listings() -> Iterator[None]:
    """Inside, each gs:// prefix is listed once: `glob` and `describe` share what it returned.

    For a step that lists a data set and then describes the same files (the snapshot), so a
    bucket of 100k objects is paged through once, not twice.
    """
    if _LISTINGS.get() is not None:  # inside another: one memory for the whole outer block
        yield
        return
    token = _LISTINGS.set({})
    try:
        yield
    finally:
        _LISTINGS.reset(token)


def _gcs_listing(bucket: str, prefix: str) -> dict[str, FileInfo]:
    """Every object under `prefix` (recursive) by name, from one paged listing: no downloads."""
    remembered = _LISTINGS.get()
    for (listed_bucket, listed), listing in (remembered or {}).items():
        if listed_bucket == bucket and prefix.startswith(listed):  # a listing that covers it
            if listed == prefix:
                return listing
            return {name: info for name, info in listing.items() if name.startswith(prefix)}
    client = gcs_client()
    listing = {}
    for blob in client.list_blobs(bucket, prefix=prefix, fields=_LIST_FIELDS):
        if blob.name.endswith("/"):  # a folder placeholder, not a file
            continue
        listing[blob.name] = FileInfo(
            path=f"{GCS_PREFIX}{bucket}/{blob.name}",
            size=int(blob.size or 0),
            generation=int(blob.generation or 0),
            crc32c=blob.crc32c or "",
            md5=blob.md5_hash or "",
        )
    if remembered is not None:
        remembered[(bucket, prefix)] = listing
    return listing


def _remembered(bucket: str, name: str) -> FileInfo | None | bool:
    """`name`'s entry in a remembered listing that covers it; False when none covers it."""
    for (listed_bucket, prefix), listing in (_LISTINGS.get() or {}).items():
        if listed_bucket == bucket and name.startswith(prefix):
            return listing.get(name)
    return False


def describe(paths: Iterable[str]) -> dict[str, FileInfo]:
    """FileInfo of each path that is a file; paths where no file is are left out.

    Locally one `stat` per path. On gs:// one listing per folder the paths are in (never a
    request per object, never a download), reusing what `remember_listings` kept.
    """
    found: dict[str, FileInfo] = {}
    by_folder: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for path in paths:
        if not _is_gcs(path):
            try:
                stat = os.stat(path)  # one call: is it a file, and its size and mtime
            except OSError:
                continue
            if S_ISREG(stat.st_mode):
                found[path] = FileInfo(path, stat.st_size, mtime_ns=stat.st_mtime_ns)
            continue
        bucket, name = _split_gcs(path)
        known = _remembered(bucket, name)
        if known is False:
            by_folder.setdefault((bucket, name.rpartition("/")[0]), []).append((name, path))
        elif known is not None:
            found[path] = known
    for (bucket, folder), names in by_folder.items():
        listing = _gcs_listing(bucket, f"{folder}/" if folder else "")
        found.update({path: listing[name] for name, path in names if name in listing})
    return found
