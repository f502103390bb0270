"""CLI: python -m components.snapshot --data DIR --output DIR [settings]."""

from __future__ import annotations

import argparse
import sys

from components.common.cli import (
    add_config_flags,
    add_run_context_flags,
    config_from_flags,
    one_line_errors,
    run_context_from_flags,
    setup_logging,
)
from components.common.settings.config import (
    PreprocessConfig,
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
    add_run_context_flags(
        parser,
        "pipeline run to nest under (default: a new cli-<random> id)",
        model_help="registered model whose champion the data is compared with",
        alias_help="the champion's alias",
    )
    for config_type in (SnapshotConfig, PreprocessConfig, TrainConfig):
        add_config_flags(parser, config_type)
    args = parser.parse_args(argv)
    # bad settings exit here, before any work
    configs = [config_from_flags(t, args) for t in (SnapshotConfig, PreprocessConfig, TrainConfig)]
    run = run_context_from_flags(args)
    setup_logging()
    from components.snapshot.snapshot import take_snapshot

    settings, preprocess, train = configs
    result = take_snapshot(args.data, args.output, preprocess, train, settings, run)
    print(result.report_markdown)
    return 4 if result.skipped else 0


if __name__ == "__main__":
    with one_line_errors("python -m components.snapshot"):
        sys.exit(main())
