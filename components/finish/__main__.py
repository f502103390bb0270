"""CLI: python -m components.finish --pipeline-run-id ID --state SUCCEEDED|FAILED."""

from __future__ import annotations

import argparse
import sys

from components.common.cli import one_line_errors, setup_logging
from components.common.settings.config import DEFAULT_EXPERIMENT


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m components.finish",
        description="Close a pipeline run in MLflow, as the pipeline's last task does: write "
        "its headline (mean IoU, gate, published version) on the parent run, mark step runs "
        "still RUNNING as FAILED, and end the parent with the given state.",
    )
    parser.add_argument("--pipeline-run-id", required=True, help="the KFP run id of the run")
    parser.add_argument(
        "--state",
        required=True,
        choices=["SUCCEEDED", "FAILED", "CANCELLED"],
        help="how the pipeline's steps ended",
    )
    parser.add_argument("--experiment", default=DEFAULT_EXPERIMENT, help="MLflow experiment name")
    parser.add_argument("--data-dir", default="", help="the run's input data (names the parent)")
    parser.add_argument(
        "--wait", type=float, default=120.0, help="seconds to wait for the tracking server"
    )
    args = parser.parse_args(argv)
    setup_logging()
    from components.finish.closer import close_pipeline_run, describe

    try:
        headline = close_pipeline_run(
            args.experiment,
            args.pipeline_run_id,
            args.state,
            data_dir=args.data_dir,
            wait_s=args.wait,
        )
    except RuntimeError as error:
        print(f"finish: {error}", file=sys.stderr)
        return 1
    print(f"parent run {headline.parent_run_id}: {headline.status}")
    print(describe(headline, args.data_dir))
    return 0


if __name__ == "__main__":
    with one_line_errors("python -m components.finish"):
        sys.exit(main())
