"""Beam jobs as the input grows: preprocess and batch predict on 1x, 4x and 16x the CamVid
train set (copies re-encoded, so every file differs), throughput per core and the peak RSS of
each process (the launcher, and each SDK worker) — flat when no step holds the data set.

Run: .venv/bin/python tests/benchmarks/bench_beam_scale.py --model EXPORT [--scales 1,4,16]
(EXPORT: a SavedModel folder of a CamVid model, e.g. exports/segpipe-camvid/1). Both jobs run
on the DirectRunner with one SDK worker process per core.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from process_memory import run_sampling_rss

CAMVID = Path(__file__).resolve().parents[3] / "shared" / "data" / "camvid"
PREFIX = "/SegNet/CamVid/"
WORKERS = f"--direct_running_mode=multi_processing --direct_num_workers={os.cpu_count()}"


def replicate(scale: int, root: Path) -> Path:
    """images/ and masks/ with every CamVid train pair `scale` times: each copy's PNG carries
    its copy number in a text chunk (the same pixels, different bytes)."""
    from PIL import Image, PngImagePlugin

    data = root / f"x{scale}"
    (data / "images").mkdir(parents=True)
    (data / "masks").mkdir()
    for line in (CAMVID / "train.txt").read_text().split("\n"):
        if not line.strip():
            continue
        image_path, mask_path = (CAMVID / p.removeprefix(PREFIX) for p in line.split())
        image, mask = Image.open(image_path), Image.open(mask_path)
        for copy in range(scale):
            text = PngImagePlugin.PngInfo()
            text.add_text("copy", str(copy))
            name = f"{copy}_{image_path.stem}.png"
            image.save(data / "images" / name, pnginfo=text)
            mask.save(data / "masks" / name, pnginfo=text)
    return data


def measure(command: list[str]) -> tuple[float, float, float]:
    """Wall seconds, the peak RSS (GB) of the launcher and of the largest other process."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    measured = run_sampling_rss(command, env)
    peaks = dict(measured.peaks)
    launcher = peaks.pop(measured.root_pid, 0)
    return measured.seconds, launcher / 2**30, max(peaks.values(), default=0) / 2**30


def run_preprocess(data: str, output: str) -> None:
    from components.common.settings.config import PreprocessConfig
    from components.preprocess.pipeline import run_preprocess as preprocess

    config = PreprocessConfig(
        num_classes=11,
        ignore_values="11",
        image_height=360,
        image_width=480,
        val_fraction=0.1,
        max_reject_fraction=0.0,
    )
    preprocess(data, output, config)


def run_predict(model: str, data: str, output: str) -> None:
    from pipelines.beam_predict import predict_on_beam

    result = predict_on_beam(model, f"{data}/images", output, "DirectRunner", WORKERS)
    assert not result.skipped, result.skipped[:3]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, help="a CamVid SavedModel folder")
    parser.add_argument("--scales", default="1,4,16")
    parser.add_argument("--steps", default="preprocess,predict")
    parser.add_argument("--preprocess", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--predict", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.preprocess:
        run_preprocess(*args.preprocess)
        return 0
    if args.predict:
        run_predict(args.model, *args.predict)
        return 0
    if not CAMVID.is_dir():
        print(f"skipped: {CAMVID} is absent")
        return 0
    cores = os.cpu_count()
    print("| step | scale | images | images/s per core | launcher peak RSS | worker peak RSS |")
    print("|---|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as scratch:
        for scale in (int(s) for s in args.scales.split(",")):
            data = replicate(scale, Path(scratch))
            images = len(list((data / "images").iterdir()))
            for step in args.steps.split(","):
                output = str(Path(scratch) / f"{step}_x{scale}")
                command = [sys.executable, __file__, "--model", args.model, f"--{step}"]
                seconds, launcher, worker = measure([*command, str(data), output])
                print(
                    f"| {step} | {scale}x | {images} | {images / seconds / cores:.2f} | "
                    f"{launcher:.2f} GB | {worker:.2f} GB |",
                    flush=True,
                )
            subprocess.run(["rm", "-rf", str(data)], check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
