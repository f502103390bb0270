"""Preprocess benchmark on CamVid: Beam job vs a multiprocessing.Pool baseline, and peak RSS.

Run: .venv/bin/python tests/benchmarks/bench_preprocess.py [--scales 1,10]
Both jobs run the same per-pair code (decode, validate, resize to 360x480, encode the
tf.Example) and the same TFRecord framing, on the same cores; each runs as its own process
tree, whose summed RSS is sampled every 0.2 s.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from process_memory import run_sampling_rss

CAMVID = Path(__file__).resolve().parents[3] / "shared" / "data" / "camvid"
LISTS = ("train.txt", "val.txt", "test.txt")
PREFIX = "/SegNet/CamVid/"


def replicate(scale: int, root: Path) -> Path:
    """A list-files data set with every CamVid pair `scale` times, under distinct names."""
    data = root / f"camvid_x{scale}"
    (data / "links").mkdir(parents=True)
    for list_name in LISTS:
        lines = []
        for line in (CAMVID / list_name).read_text().split("\n"):
            if not line.strip():
                continue
            image, mask = (CAMVID / p.removeprefix(PREFIX) for p in line.split())
            for copy in range(scale):
                image_link = data / "links" / f"{copy}_{image.name}"
                mask_link = data / "links" / f"{copy}_{image.stem}_mask.png"
                image_link.symlink_to(image)
                mask_link.symlink_to(mask)
                lines.append(f"{image_link} {mask_link}")
        (data / list_name).write_text("\n".join(lines) + "\n")
    return data


def _baseline_worker(job):
    """Encode one shard's pairs and write them, as the Pool baseline's unit of work."""
    from apache_beam.io.tfrecordio import _TFRecordUtil

    from components.common.settings.config import PreprocessConfig
    from components.preprocess.examples import RejectedInput, encode_pair

    pairs, path, config = job
    written = 0
    with open(path, "wb") as handle:
        for pair in pairs:
            try:
                _TFRecordUtil.write_record(
                    handle, encode_pair(pair, PreprocessConfig(**config)).serialized
                )
                written += 1
            except RejectedInput:
                pass
    return written


def run_baseline(data: Path, output: Path, config: dict, shards: int) -> None:
    """The same work with multiprocessing.Pool, one process per core."""
    import multiprocessing

    from components.common.data.sources import list_sources
    from components.common.settings.config import PreprocessConfig

    pairs = list_sources(str(data), PreprocessConfig(**config))
    output.mkdir(parents=True, exist_ok=True)
    jobs = [
        (pairs[i::shards], str(output / f"part-{i:05d}.tfrecord"), config) for i in range(shards)
    ]
    with multiprocessing.get_context("spawn").Pool(os.cpu_count()) as pool:
        written = sum(pool.map(_baseline_worker, jobs, chunksize=1))
    print(f"baseline wrote {written} of {len(pairs)}", file=sys.stderr)


def run_beam(data: Path, output: Path, config: dict, shards: int) -> None:
    """The Beam job itself (DirectRunner, one worker per core), without the MLflow step."""
    from components.common.settings.config import PreprocessConfig
    from components.preprocess.pipeline import run_preprocess

    run_preprocess(str(data), str(output), PreprocessConfig(**config, num_shards=shards))


def measure(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and peak summed RSS (GB) of `command`'s whole process tree."""
    measured = run_sampling_rss(command, env)
    return measured.seconds, measured.peak_total / 2**30


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scales", default="1,10", help="replication factors to run")
    parser.add_argument("--shards", type=int, default=16)
    parser.add_argument("--baseline", nargs=2, metavar=("DATA", "OUT"), help=argparse.SUPPRESS)
    parser.add_argument("--beam", nargs=2, metavar=("DATA", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    config = {
        "layout": "list-files",
        "list_files": ",".join(LISTS),
        "num_classes": 11,
        "ignore_values": "11",
        "image_height": 360,
        "image_width": 480,
    }
    if args.baseline:
        run_baseline(Path(args.baseline[0]), Path(args.baseline[1]), config, args.shards)
        return 0
    if args.beam:
        run_beam(Path(args.beam[0]), Path(args.beam[1]), config, args.shards)
        return 0
    if not CAMVID.is_dir():
        print(f"skipped: {CAMVID} is absent")
        return 0
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
        for scale in (int(s) for s in args.scales.split(",")):
            data = replicate(scale, root)
            images = 701 * scale
            own = [sys.executable, __file__, "--shards", str(args.shards)]
            beam_cmd = [*own, "--beam", str(data), str(root / f"beam_x{scale}")]
            base_cmd = [*own, "--baseline", str(data), str(root / f"pool_x{scale}")]
            beam_s, beam_gb = measure(beam_cmd, env)
            pool_s, pool_gb = measure(base_cmd, env)
            print(
                f"x{scale} ({images} images): beam {images / beam_s:.1f} img/s, "
                f"peak RSS {beam_gb:.2f} GB | pool {images / pool_s:.1f} img/s, "
                f"peak RSS {pool_gb:.2f} GB | beam/pool throughput ratio "
                f"{pool_s / beam_s:.2f} (target >= 0.8)",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
