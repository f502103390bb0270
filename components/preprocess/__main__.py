"""CLI: python -m components.preprocess --data DIR --output DIR [-- beam flags]."""

from __future__ import annotations

import argparse
import json
import sys

from components.common.cli import add_config_flags, config_from_flags, setup_logging
from components.common.config import PreprocessConfig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m components.preprocess",
        description="Validate, resize and shard image + mask pairs into TFRecords (Apache Beam). "
        "Unknown flags pass through to Beam, e.g. --temp_location gs://bucket/tmp.",
    )
    parser.add_argument("--data", required=True, help="folder with images/ and masks/ (or gs://)")
    parser.add_argument("--output", required=True, help="output folder for shards, stats, rejects")
    add_config_flags(parser, PreprocessConfig)
    args, beam_args = parser.parse_known_args(argv)
    setup_logging()
    from components.preprocess.pipeline import run_preprocess

    stats = run_preprocess(
        args.data, args.output, config_from_flags(PreprocessConfig, args), beam_args
    )
    json.dump(stats, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
