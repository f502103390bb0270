"""CLI: python -m components.train --dataset DIR --model-dir DIR."""

from __future__ import annotations

import argparse
import sys
import uuid

from components.common.cli import add_config_flags, config_from_flags, setup_logging
from components.common.config import TrainConfig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m components.train",
        description="Train a segmentation model on preprocessed shards and export a SavedModel.",
    )
    parser.add_argument("--dataset", required=True, help="preprocess output folder")
    parser.add_argument("--model-dir", required=True, help="where to write the SavedModel")
    parser.add_argument("--experiment", default="segpipe", help="MLflow experiment name")
    parser.add_argument("--pipeline-run-id", default=f"cli-{uuid.uuid4().hex[:12]}")
    add_config_flags(parser, TrainConfig)
    args = parser.parse_args(argv)
    setup_logging()
    from components.train.trainer import train

    run_id = train(
        args.dataset,
        args.model_dir,
        config_from_flags(TrainConfig, args),
        args.experiment,
        args.pipeline_run_id,
    )
    print(run_id)
    return 0


if __name__ == "__main__":
    sys.exit(main())
