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
    try:
        return args.func(args)
    except SystemExit as exit_:
        if isinstance(exit_.code, str):  # a refusal: one line, in one style
            raise SystemExit(error_line(args.command, exit_.code)) from exit_.__cause__
        raise


def error_line(command: str, message: str) -> str:
    """`segpipe <command>: <what went wrong>`, the style of every error line segpipe prints."""
    prefix = f"segpipe {command}"
    if message.startswith(prefix):
        return message
    return f"{prefix}: {message.removeprefix('segpipe: ')}"


if __name__ == "__main__":
    sys.exit(main())
