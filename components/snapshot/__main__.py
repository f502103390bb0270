"""CLI: python -m components.snapshot --data DIR --output DIR [settings]."""

from __future__ import annotations

import argparse
import sys

from components.common.cli import (
    add_config_flags,
    config_from_flags,
    one_line_errors,
    setup_logging,
)
from components.common.settings.config import (
    DEFAULT_EXPERIMENT,
    PreprocessConfig,
    PublishConfig,
    SnapshotConfig,
    TrainConfig,
)

EXAMPLES = """examples:
  # what changed in ./data since the champion was trained
  python -m components.snapshot --data ./data --output ./snapshot --num-classes 4
  # on a bucket: sizes and checksums come from the listing, nothing is downloaded
  python -m components.snapshot --data gs://bucket/raw --output ./snapshot
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m components.snapshot",
        description="List the inputs preprocess would read (no decoding): write manifest.parquet, "
        "its fingerprints (snapshot.json) and the diff against the champion's manifest "
        "(diff.json, report.md). Exits 0, or 4 when the data and training settings equal the "
        "champion's and --skip-unchanged is true (nothing to do).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--data", required=True, help="input folder (local or gs://)")
    parser.add_argument("--output", required=True, help="local folder for the snapshot files")
    parser.add_argument("--experiment", default=DEFAULT_EXPERIMENT, help="MLflow experiment name")
    parser.add_argument("--pipeline-run-id", default="manual", help="pipeline run to nest under")
    parser.add_argument("--model-name", default=PublishConfig.model_name, help="registered model")
    parser.add_argument("--alias", default=PublishConfig.alias, help="the champion's alias")
    for config_type in (SnapshotConfig, PreprocessConfig, TrainConfig):
        add_config_flags(parser, config_type)
    args = parser.parse_args(argv)
    # bad settings exit here, before any work
    configs = [config_from_flags(t, args) for t in (SnapshotConfig, PreprocessConfig, TrainConfig)]
    setup_logging()
    from components.snapshot.snapshot import take_snapshot

    settings, preprocess, train = configs
    result = take_snapshot(
        args.data,
        args.output,
        preprocess,
        train,
        settings,
        args.model_name,
        args.alias,
        args.experiment,
        args.pipeline_run_id,
    )
    print(result.report_markdown)
    return 4 if result.skipped else 0


if __name__ == "__main__":
    with one_line_errors("python -m components.snapshot"):
        sys.exit(main())
