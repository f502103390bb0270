"""Snapshot speed: listing a data set into a manifest without reading it (local and gs://).

Run: .venv/bin/python tests/benchmarks/bench_snapshot.py [--local-files 100000]
         [--gcs-objects 20000] [--skip-gcs]

Local: a folder of `--local-files` small files (half images/, half masks/, 100 bytes each,
never decoded), listed into manifest rows by size + mtime (the default) and by sha256 of the
bytes (`hash_local_files`), then fingerprinted and written as Parquet. The page cache is warm
(the files were just written), as on a machine that lists the same folder every week.

gs://: gcp-storage-emulator on 127.0.0.1 holding `--gcs-objects` objects, uploaded through the
real client beforehand (not timed). The emulator rewrites a JSON file of every object's metadata
after each upload (quadratic: 2000 uploads took 92 s); the benchmark turns that bookkeeping off
while it uploads, which changes nothing the listing sees (the objects live in memory). The
snapshot lists each folder once: the timing covers the listing requests and building the rows,
and counts every request (nothing is downloaded). The emulator answers a listing in one page;
real GCS pages by 1000 objects, one round trip each, which the printed extrapolation adds as a
stated assumption, not a measurement.
"""

from __future__ import annotations

import argparse
import os
import socket
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

from components.common.data.manifest import manifest_sha256, write_manifest
from components.common.settings.config import PreprocessConfig
from components.common.tracking.lineage import data_fingerprint
from components.snapshot.snapshot import list_manifest

CONFIG = PreprocessConfig()
ROUND_TRIP_S = 0.1  # assumed latency of one GCS listing page (1000 objects), for extrapolating


def write_files(root: str, files: int) -> None:
    """`files` small files as images/NAME.png + masks/NAME.png pairs (content never decoded)."""
    for kind in ("images", "masks"):
        os.makedirs(os.path.join(root, kind), exist_ok=True)
    for index in range(files // 2):
        for kind in ("images", "masks"):
            with open(os.path.join(root, kind, f"f{index:07d}.png"), "wb") as handle:
                handle.write(index.to_bytes(8, "little") * 12 + kind.encode()[:4])


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return time.perf_counter() - start, result


def bench_local(files: int) -> None:
    with tempfile.TemporaryDirectory(prefix="segpipe-bench-snapshot-") as root:
        seconds, _ = timed(write_files, root, files)
        print(f"local: wrote {files} files in {seconds:.1f} s (not part of the snapshot)")
        for label, hash_local in (("size + mtime", False), ("sha256 of bytes", True)):
            for attempt in (1, 2):
                seconds, rows = timed(list_manifest, root, CONFIG, hash_local)
                print(
                    f"local, {label}, run {attempt}: {len(rows)} inputs ({2 * len(rows)} files) "
                    f"in {seconds:.2f} s = {2 * len(rows) / seconds:,.0f} files/s"
                )
        seconds, _ = timed(lambda: data_fingerprint(manifest_sha256(rows), CONFIG))
        print(f"local: fingerprint of {len(rows)} rows in {seconds:.2f} s")
        path = os.path.join(root, "manifest.parquet")
        seconds, _ = timed(write_manifest, path, rows, {})
        size = os.path.getsize(path)
        print(f"local: manifest.parquet written in {seconds:.2f} s, {size / 1e6:.1f} MB")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def bench_gcs(objects: int) -> None:
    from gcp_storage_emulator.server import create_server
    from gcp_storage_emulator.storage import Storage
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    port = _free_port()
    server = create_server("127.0.0.1", port, in_memory=True)
    server.start()
    os.environ["STORAGE_EMULATOR_HOST"] = f"http://127.0.0.1:{port}"
    try:
        client = storage.Client(project="bench", credentials=AnonymousCredentials())
        bucket = client.create_bucket("bench")

        def upload(index: int) -> None:
            kind = "images" if index % 2 == 0 else "masks"
            name = f"raw/{kind}/f{index // 2:07d}.png"
            bucket.blob(name).upload_from_string(index.to_bytes(8, "little") * 12)

        save = Storage._write_config_to_file
        Storage._write_config_to_file = lambda self: None  # see the module docstring
        try:
            seconds, _ = timed(lambda: list(ThreadPoolExecutor(8).map(upload, range(objects))))
        finally:
            Storage._write_config_to_file = save
        print(f"gs:// emulator: uploaded {objects} objects in {seconds:.1f} s (not timed below)")

        requests = []
        original = storage.Client.list_blobs

        def counted(self, *args, **kwargs):
            requests.append(kwargs.get("prefix"))
            return original(self, *args, **kwargs)

        storage.Client.list_blobs = counted
        try:
            for attempt in (1, 2):
                requests.clear()
                seconds, rows = timed(list_manifest, "gs://bench/raw", CONFIG)
                per_object = seconds / objects
                print(
                    f"gs:// emulator, run {attempt}: {len(rows)} inputs ({objects} objects) in "
                    f"{seconds:.2f} s = {objects / seconds:,.0f} objects/s "
                    f"({per_object * 1e6:.0f} us per object), listings: {sorted(requests)}"
                )
        finally:
            storage.Client.list_blobs = original
        pages = -(-100_000 // 1000)
        estimate = 100_000 * per_object + pages * ROUND_TRIP_S
        print(
            f"gs:// extrapolated to 100k objects: {100_000 * per_object:.1f} s of listing work "
            f"as measured + {pages} pages x {ROUND_TRIP_S} s assumed round trip = {estimate:.0f} s"
        )
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--local-files", type=int, default=100_000)
    parser.add_argument("--gcs-objects", type=int, default=20_000)
    parser.add_argument("--skip-gcs", action="store_true")
    args = parser.parse_args()
    bench_local(args.local_files)
    if not args.skip_gcs:
        bench_gcs(args.gcs_objects)


if __name__ == "__main__":
    main()
