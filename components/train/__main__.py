"""CLI: python -m components.train --dataset DIR --model-dir DIR."""

from __future__ import annotations

import argparse
import os
import sys

from components.common.cli import (
    add_config_flags,
    add_run_context_flags,
    config_from_flags,
    one_line_errors,
    run_context_from_flags,
    setup_logging,
)
from components.common.settings.config import TrainConfig
from components.train.cluster_env import jobset_tf_config
from components.train.hardware import is_multi_worker


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m components.train",
        description="Train a segmentation model on preprocessed shards and export a SavedModel.",
    )
    parser.add_argument("--dataset", required=True, help="preprocess output folder")
    parser.add_argument("--model-dir", required=True, help="where to write the SavedModel")
    add_run_context_flags(
        parser,
        "names the checkpoint under --checkpoint-root: rerun with the same id to resume "
        "(default: a new cli-<random> id)",
        model_help="registered model to warm start from",
        alias_help="its alias to warm start from",
    )
    parser.add_argument(
        "--checkpoint-dir",
        default="",
        help="checkpoint here instead of <checkpoint-root>/<pipeline-run-id>/train; "
        "a rerun with the same folder resumes",
    )
    parser.add_argument(
        "--snapshot",
        default="",
        help="the snapshot step's output folder: logged as the run's dataset input, with the "
        "manifest, so the registered version records what it was trained on",
    )
    add_config_flags(parser, TrainConfig)
    args = parser.parse_args(argv)
    config = config_from_flags(TrainConfig, args)  # refused here, before TensorFlow loads
    tf_config = jobset_tf_config(os.environ)  # a worker pod of a Kubeflow Trainer TrainJob
    if tf_config:
        os.environ["TF_CONFIG"] = tf_config
    if is_multi_worker(os.environ.get("TF_CONFIG")) and not args.pipeline_run_id:
        parser.error("several workers (TF_CONFIG) need one --pipeline-run-id shared by all")
    run = run_context_from_flags(args)
    setup_logging()
    from components.train.trainer import train

    run_id = train(
        args.dataset,
        args.model_dir,
        config,
        run,
        checkpoint_dir=args.checkpoint_dir,
        snapshot_dir=args.snapshot,
    )
    print(run_id)
    return 0


if __name__ == "__main__":
    with one_line_errors("python -m components.train"):
        sys.exit(main())
