"""Peak RSS of one preprocess worker encoding one large image + mask pair.

Run: .venv/bin/python tests/benchmarks/bench_large_image.py [--sides 64,8000,10000,13000]
Each side gets a generated pair (smooth RGB PNG, 3-class mask) and a fresh process that
imports the step and encodes the pair once, as a Beam worker does; the figure is that
process's peak resident set size. The side 13000 is run twice: with the default max_pixels
(refused from the header) and with max_pixels raised so that it is encoded.
"""

from __future__ import annotations

import argparse
import multiprocessing
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

ENCODE = """
import resource
import sys
from components.common.settings.config import PreprocessConfig
from components.preprocess.examples import RejectedInput, encode_pair
from components.common.data.sources import SourcePair

folder, max_pixels = sys.argv[1], int(sys.argv[2])
config = PreprocessConfig(num_classes=3, image_height=128, image_width=128, max_pixels=max_pixels)
try:
    encode_pair(SourcePair("big", f"{folder}/img.png", f"{folder}/mask.png"), config)
    outcome = "written"
except RejectedInput as rejected:
    outcome = rejected.reason
print(outcome, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # KB on Linux
"""


def write_pair(side: int, folder: Path) -> None:
    """A side x side RGB gradient and a mask with classes 0, 1 and 2."""
    ramp = (np.arange(side, dtype=np.uint32) * 255 // side).astype(np.uint8)
    image = np.empty((side, side, 3), np.uint8)
    image[..., 0], image[..., 1], image[..., 2] = ramp[None, :], ramp[:, None], 128
    Image.fromarray(image).save(folder / "img.png", compress_level=1)
    del image
    mask = np.zeros((side, side), np.uint8)
    mask[side // 4 : side // 2, side // 4 : side // 2] = 1
    mask[side // 2 :, side // 2 :] = 2
    Image.fromarray(mask).save(folder / "mask.png", compress_level=1)


def peak_rss_mb(folder: Path, max_pixels: int) -> tuple[str, float]:
    """The outcome and peak RSS (MB) of a fresh process encoding the pair in `folder`."""
    result = subprocess.run(
        [sys.executable, "-c", ENCODE, str(folder), str(max_pixels)],
        capture_output=True,
        text=True,
        check=True,
    )
    outcome, peak_kb = result.stdout.split()
    return outcome, int(peak_kb) / 1024


def main() -> None:
    from components.common.settings.config import DEFAULT_MAX_PIXELS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sides", default="64,8000,10000,13000")
    sides = [int(side) for side in parser.parse_args().sides.split(",")]
    print(f"default max_pixels: {DEFAULT_MAX_PIXELS:,}")
    runs = [(side, DEFAULT_MAX_PIXELS) for side in sides]
    runs += [(side, side * side) for side in sides if side * side > DEFAULT_MAX_PIXELS]
    for side, max_pixels in sorted(runs):
        with tempfile.TemporaryDirectory() as tmp:
            # written by another process: Linux carries the parent's peak RSS over exec
            writer = multiprocessing.get_context("spawn").Process(
                target=write_pair, args=(side, Path(tmp))
            )
            writer.start()
            writer.join()
            outcome, peak = peak_rss_mb(Path(tmp), max_pixels)
        print(f"{side}x{side}, max_pixels {max_pixels:,}: {outcome}, peak RSS {peak:,.0f} MB")


if __name__ == "__main__":
    main()
