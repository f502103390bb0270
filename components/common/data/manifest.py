"""The data manifest: every input a layout reads, with a content identity, as a Parquet table."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from components.common import storage
from components.common.data.image_files import printable
from components.common.data.sources import SourcePair

MANIFEST_FILE = "manifest.parquet"
CHUNK = 1 << 20
NOT_A_FILE = -1  # size of a missing half or a path that is no file


@dataclass(frozen=True)
class ManifestRow:
    """One input: its pair of files, their sizes and content identities, as listed (not read).

    `*_identity` is `md5:..` or `crc32c:..` from a gs:// listing, `sha256:..` when local files
    are hashed, else `mtime_ns:..`; "" where there is no file. `*_generation` is the gs://
    object generation (0 locally): which version was read, not part of the identity, so a
    re-upload of the same bytes is no change. `problem` is the reject reason found while
    listing (a missing mask, an unsupported file), "" for a pair preprocess will read.
    """

    source_id: str
    split: str  # the layout's split, "" when the hash split decides
    image_path: str
    mask_path: str
    image_size: int
    mask_size: int
    image_identity: str
    mask_identity: str
    image_generation: int
    mask_generation: int
    problem: str


FIELDS = tuple(f.name for f in dataclasses.fields(ManifestRow))
# what says whether an input changed: everything but the gs:// generation
CONTENT_FIELDS = tuple(f for f in FIELDS if not f.endswith("_generation"))


def file_identity(info: storage.FileInfo, hash_local: bool) -> str:
    """The content identity of a listed file (see ManifestRow)."""
    if info.path.startswith(storage.GCS_PREFIX):
        # MD5 when GCS has it (not on composite objects); CRC32C always
        return f"md5:{info.md5}" if info.md5 else f"crc32c:{info.crc32c}"
    if hash_local:
        return f"sha256:{_file_sha256(info.path)}"
    return f"mtime_ns:{info.mtime_ns}"


def _file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def build_rows(
    pairs: Sequence[SourcePair], files: dict[str, storage.FileInfo], hash_local: bool = False
) -> list[ManifestRow]:
    """Manifest rows for `pairs`, with the sizes and identities `files` (from a listing) hold."""

    def half(path: str | None) -> tuple[str, int, str, int]:
        info = files.get(path) if path else None
        shown = printable(path or "")  # Parquet holds UTF-8: undecodable name bytes as \xNN
        if info is None:
            return shown, NOT_A_FILE, "", 0
        return shown, info.size, file_identity(info, hash_local), info.generation

    rows = []
    for pair in pairs:
        image, image_size, image_identity, image_generation = half(pair.image_path)
        mask, mask_size, mask_identity, mask_generation = half(pair.mask_path)
        rows.append(
            ManifestRow(
                source_id=pair.source_id,
                split=pair.split or "",
                image_path=image,
                mask_path=mask,
                image_size=image_size,
                mask_size=mask_size,
                image_identity=image_identity,
                mask_identity=mask_identity,
                image_generation=image_generation,
                mask_generation=mask_generation,
                problem=pair.problem[0] if pair.problem else "",
            )
        )
    return sorted(rows, key=_order)


def _order(row: ManifestRow) -> tuple[str, str, str]:
    return (row.source_id, row.image_path, row.mask_path)


def manifest_sha256(rows: Iterable[ManifestRow]) -> str:
    """sha256 over the rows' content fields, in a fixed order: equal exactly when the inputs are."""
    digest = hashlib.sha256()
    for row in sorted(rows, key=_order):
        values = [getattr(row, name) for name in CONTENT_FIELDS]
        # one JSON array per line: no separator inside a value can make two rows read as one
        digest.update(json.dumps(values, ensure_ascii=False).encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


def write_manifest(path: str, rows: Sequence[ManifestRow], metadata: dict[str, str]) -> None:
    """`rows` as Parquet at a local `path`, `metadata` (fingerprints) in the file's metadata."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = {name: [getattr(row, name) for row in rows] for name in FIELDS}
    table = pa.table(
        {
            name: pa.array(values, type=pa.int64() if _is_int(name) else pa.string())
            for name, values in columns.items()
        }
    )
    table = table.replace_schema_metadata({f"segpipe.{k}": v for k, v in metadata.items()})
    pq.write_table(table, path)


def _is_int(name: str) -> bool:
    return name.endswith(("_size", "_generation"))


def read_manifest(path: str) -> list[ManifestRow]:
    """The rows of a manifest written by `write_manifest`; a clear error for anything else."""
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (OSError, ValueError) as error:
        raise ValueError(f"{path} is not a segpipe manifest (Parquet): {error}") from error
    missing = [name for name in FIELDS if name not in table.column_names]
    if missing:
        raise ValueError(f"{path} is not a segpipe manifest: no column {', '.join(missing)}")
    columns = {name: table.column(name).to_pylist() for name in FIELDS}
    return [
        ManifestRow(**{name: columns[name][i] for name in FIELDS}) for i in range(table.num_rows)
    ]
