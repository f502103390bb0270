"""`segpipe data-diff`: what differs between the data two registered versions were trained on."""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys

from components.common.settings.config import PublishConfig

SHOWN = 20  # ids listed per kind unless --all


def cmd_data_diff(args: argparse.Namespace) -> int:
    if importlib.util.find_spec("pyarrow") is None:  # the manifests are Parquet
        raise SystemExit(
            "segpipe data-diff needs pyarrow, not installed here: pip install 'segpipe[preprocess]'"
        )
    from mlflow.tracking import MlflowClient

    from components.common.tracking.runs import check_reachable, check_store_exists, tracking_uri
    from components.common.tracking.version_data import diff_versions

    try:
        check_store_exists(tracking_uri(), "segpipe data-diff")
        check_reachable(tracking_uri())
        old, new, diff = diff_versions(MlflowClient(tracking_uri()), args.model, args.old, args.new)
    except (LookupError, ValueError, RuntimeError) as error:
        raise SystemExit(f"segpipe data-diff: {error}") from error
    if args.json:
        json.dump(diff.as_dict(), sys.stdout, indent=2)
        print()
        return 0
    print(f"{args.model}: data of version {old.version} -> version {new.version}")
    for side in (old, new):
        print(f"  version {side.version}: {len(side.rows)} inputs, manifest {side.manifest_uri}")
        print(f"    manifest sha256 {side.manifest_sha256}")
    for line in diff.lines(shown=None if args.all else SHOWN):
        print(f"  {line}")
    return 0


def add_commands(commands) -> None:
    """The `data-diff` sub-command on `commands` (argparse sub-parsers)."""
    parser = commands.add_parser(
        "data-diff",
        help="list the inputs added, removed and changed between two versions' training data",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  segpipe data-diff --model segpipe-unet 3 5\n"
        "Each version's manifest is found through its tags (segpipe.manifest_uri) and checked\n"
        "against its recorded sha256. Uses $MLFLOW_TRACKING_URI (default sqlite:///mlflow.db).",
    )
    parser.add_argument("old", metavar="VERSION_A", help="the earlier version")
    parser.add_argument("new", metavar="VERSION_B", help="the later version")
    parser.add_argument("--model", default=PublishConfig.model_name, help="registered model name")
    parser.add_argument("--all", action="store_true", help=f"list every id (default: {SHOWN})")
    parser.add_argument("--json", action="store_true", help="print the whole diff as JSON")
    parser.set_defaults(func=cmd_data_diff)
