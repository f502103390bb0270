"""The `segpipe` command line: local commands, cluster commands, data-diff, serve-manifest,
`segpipe params`."""

from __future__ import annotations

import argparse
import sys

from pipelines.cli import (
    cluster_commands,
    lineage_commands,
    local_commands,
    params,
    serving_commands,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="segpipe",
        description="Segmentation training pipeline: preprocess, train, evaluate, publish.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    local_commands.add_commands(commands)
    cluster_commands.add_commands(commands)
    lineage_commands.add_commands(commands)
    serving_commands.add_commands(commands)
    params.add_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
