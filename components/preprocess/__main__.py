"""CLI: python -m components.preprocess --data DIR --output DIR [Beam flags]."""

from __future__ import annotations

import argparse
import json
import sys

from components.common.cli import (
    add_config_flags,
    config_from_flags,
    one_line_errors,
    setup_logging,
)
from components.common.settings.config import DEFAULT_EXPERIMENT, PreprocessConfig

EXAMPLES = """examples:
  # images/NAME.png + masks/NAME.png
  python -m components.preprocess --data ./data --output ./out --num-classes 4
  # CamVid list files, void (11) ignored
  python -m components.preprocess --data ../shared/data/camvid --output ./camvid \\
      --layout list-files --list-files train.txt,val.txt,test.txt \\
      --strip-prefix /SegNet/CamVid/ --num-classes 11 --ignore-values 11 \\
      --image-height 360 --image-width 480
  # on Dataflow (unknown flags pass through to Beam)
  python -m components.preprocess --data gs://bucket/raw --output gs://bucket/ds \\
      --runner DataflowRunner --project P --region R --temp_location gs://bucket/tmp
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m components.preprocess",
        description="Validate, resize and shard image + mask pairs into TFRecords (Apache Beam). "
        "Unknown flags pass through to Beam.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--data", required=True, help="input folder (local or gs://)")
    parser.add_argument("--output", required=True, help="output folder (local or gs://)")
    parser.add_argument("--experiment", default=DEFAULT_EXPERIMENT, help="MLflow experiment name")
    parser.add_argument(
        "--data-fingerprint",
        default="",
        help="the snapshot step's fingerprint of --data, recorded in lineage.json",
    )
    add_config_flags(parser, PreprocessConfig)
    args, beam_args = parser.parse_known_args(argv)
    config = config_from_flags(PreprocessConfig, args)  # a bad setting exits here, before work
    setup_logging()
    from components.preprocess.preprocessor import preprocess

    result = preprocess(
        args.data, args.output, config, args.experiment, beam_args, args.data_fingerprint
    )
    json.dump(result.stats, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    with one_line_errors("python -m components.preprocess"):
        sys.exit(main())
