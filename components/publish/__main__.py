"""CLI: python -m components.publish --model-dir DIR --train-run-id ID."""

from __future__ import annotations

import argparse
import sys

from components.common.cli import (
    add_config_flags,
    config_from_flags,
    one_line_errors,
    setup_logging,
)
from components.common.settings.config import DEFAULT_EXPERIMENT, PublishConfig, RunContext


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m components.publish",
        description="Register a model that passed the gate, set its alias and export it. "
        "Exits 3 (refused) unless a passed evaluation of this exact model exists and "
        "the alias still points where that evaluation saw it.",
    )
    parser.add_argument("--model-dir", required=True, help="SavedModel folder to export")
    parser.add_argument("--train-run-id", required=True, help="MLflow run that logged the model")
    parser.add_argument(
        "--dataset", default=None, help="preprocess output: stats.json fingerprint for the card"
    )
    parser.add_argument("--experiment", default=DEFAULT_EXPERIMENT, help="MLflow experiment name")
    parser.add_argument(
        "--pipeline-run-id",
        default="",
        help="use the evaluation of this pipeline run (default: the latest evaluation of this "
        "exact model folder, found by its content digest)",
    )
    add_config_flags(parser, PublishConfig)
    args = parser.parse_args(argv)
    setup_logging()
    from components.publish.publisher import PublishRefused, publish

    config = config_from_flags(PublishConfig, args)
    run = RunContext(args.experiment, args.pipeline_run_id, config.model_name, config.alias)
    try:
        result = publish(
            args.model_dir, args.train_run_id, run, config.export_root, dataset_dir=args.dataset
        )
    except PublishRefused as refusal:
        print(f"publish: {refusal}", file=sys.stderr)
        return refusal.exit_code
    print(f"version {result.version} exported to {result.export_path}")
    return 0


if __name__ == "__main__":
    with one_line_errors("python -m components.publish"):
        sys.exit(main())
