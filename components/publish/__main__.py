"""CLI: python -m components.publish --model-dir DIR --train-run-id ID."""

from __future__ import annotations

import argparse
import sys
import uuid

from components.common.cli import add_config_flags, config_from_flags, setup_logging
from components.common.config import PublishConfig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m components.publish",
        description="Register a model that passed the gate, set its alias and export it.",
    )
    parser.add_argument("--model-dir", required=True, help="SavedModel folder to export")
    parser.add_argument("--train-run-id", required=True, help="MLflow run that logged the model")
    parser.add_argument(
        "--dataset", default=None, help="preprocess output: stats.json fingerprint for the card"
    )
    parser.add_argument("--experiment", default="segpipe", help="MLflow experiment name")
    parser.add_argument(
        "--pipeline-run-id",
        default=f"cli-{uuid.uuid4().hex[:12]}",
        help="the evaluate run with this id supplies metrics and the gate decision",
    )
    add_config_flags(parser, PublishConfig)
    args = parser.parse_args(argv)
    setup_logging()
    from components.publish.publisher import publish

    result = publish(
        args.model_dir,
        args.train_run_id,
        config_from_flags(PublishConfig, args),
        args.experiment,
        args.pipeline_run_id,
        dataset_dir=args.dataset,
    )
    print(f"version {result.version} exported to {result.export_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
