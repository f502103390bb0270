"""CLI: python -m components.evaluate --dataset DIR --model-dir DIR."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys

from components.common.cli import (
    add_config_flags,
    add_run_context_flags,
    config_from_flags,
    one_line_errors,
    run_context_from_flags,
    setup_logging,
)
from components.common.settings.config import GatePolicy


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m components.evaluate",
        description="Score a model and the current champion on held-out shards; apply the gate. "
        "Exits 0 when the gate passes, 3 when it does not.",
    )
    parser.add_argument("--dataset", required=True, help="preprocess output folder")
    parser.add_argument("--model-dir", required=True, help="candidate SavedModel folder")
    parser.add_argument(
        "--train-run-id",
        default="",
        help="MLflow run that trained the model (recorded; publish then checks it)",
    )
    add_run_context_flags(
        parser,
        "groups the MLflow runs (default: a new cli-<random> id; publish finds this evaluation "
        "by the model's digest)",
    )
    parser.add_argument("--report", default=None, help="also write the HTML report here")
    parser.add_argument(
        "--snapshot", default=None, help="the snapshot step's output: the run's dataset input"
    )
    parser.add_argument(
        "--per-image", default=None, help="also write the per-image IoU Parquet table here"
    )
    add_config_flags(parser, GatePolicy)
    args = parser.parse_args(argv)
    policy, run = config_from_flags(GatePolicy, args), run_context_from_flags(args)
    setup_logging()
    from components.evaluate.evaluator import evaluate

    # stdout carries only the JSON summary: MLflow prints "View run" links for HTTP servers.
    with contextlib.redirect_stdout(sys.stderr):
        result = evaluate(
            args.dataset,
            args.model_dir,
            policy,
            run,
            args.report,
            args.per_image,
            train_run_id=args.train_run_id,
            snapshot_dir=args.snapshot,
        )
    summary = {"passed": result.decision.passed, "reason": result.decision.reason}
    judged = {
        "evaluation_run_id": result.run_id,
        "pipeline_run_id": run.pipeline_run_id,
        "model_sha256": result.model_sha256,
        "champion_version": result.champion_version,
    }
    report = {"report": result.report_path, "per_image": result.images_path}
    json.dump({**summary, **judged, "metrics": result.metrics, **report}, sys.stdout, indent=2)
    print()
    return 0 if result.decision.passed else 3


if __name__ == "__main__":
    with one_line_errors("python -m components.evaluate"):
        sys.exit(main())
