"""Command-line flags generated from the config dataclasses, so a setting is declared once."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Iterator
from typing import Any, TypeVar

from components.common.errors import EXPECTED_BUILTINS, SegpipeError
from components.common.settings.config import (
    DEFAULT_ALIAS,
    DEFAULT_EXPERIMENT,
    DEFAULT_MODEL_NAME,
    PublishConfig,
    RunContext,
    help_of,
    setting_types,
    settings_of,
)
from components.common.tracking.runs import error_summary

T = TypeVar("T")


def add_config_flags(parser: argparse.ArgumentParser, config_type: type) -> None:
    """Add `--setting-name` for each setting of a config class: its type, default and help."""
    group = parser.add_argument_group(config_type.__name__)
    types = setting_types(config_type)
    for setting in settings_of(config_type):
        kind = types[setting.name]
        group.add_argument(
            f"--{setting.name.replace('_', '-')}",
            dest=setting.name,
            type=parse_bool if kind is bool else kind,
            default=setting.default,
            metavar=kind.__name__.upper(),
            help=f"{help_of(setting)} (default: {setting.default!r})".replace("%", "%%"),
        )


def add_run_context_flags(
    parser: argparse.ArgumentParser,
    pipeline_run_id_help: str,
    model_help: str = "registered model to compare with",
    alias_help: str = "its alias holding the model to beat",
) -> None:
    """Add --experiment, --pipeline-run-id, --model-name and --alias: a RunContext's fields.
    A missing --pipeline-run-id becomes a new cli-<random> id in `run_context_from_flags`."""
    parser.add_argument("--experiment", default=DEFAULT_EXPERIMENT, help="MLflow experiment name")
    parser.add_argument("--pipeline-run-id", default=None, help=pipeline_run_id_help)
    parser.add_argument("--model-name", default=DEFAULT_MODEL_NAME, help=model_help)
    parser.add_argument("--alias", default=DEFAULT_ALIAS, help=alias_help)


def run_context_from_flags(args: argparse.Namespace) -> RunContext:
    """The RunContext `add_run_context_flags` reads (the model name is checked here)."""
    pipeline_run_id = args.pipeline_run_id
    if pipeline_run_id is None:
        pipeline_run_id = f"cli-{uuid.uuid4().hex[:12]}"
    try:
        PublishConfig(model_name=args.model_name, alias=args.alias)
    except ValueError as error:
        raise SystemExit(f"invalid setting: {error}") from error
    return RunContext(args.experiment, pipeline_run_id, args.model_name, args.alias)


def parse_bool(text: str) -> bool:
    """'true'/'false' (also 1/0, yes/no) as a bool; anything else is an error."""
    lowered = text.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise ValueError(f"expected true or false, got {text!r}")


def config_from_flags(config_type: type[T], args: argparse.Namespace) -> T:
    """Build `config_type` from the flags `add_config_flags` added."""
    values: dict[str, Any] = {f.name: getattr(args, f.name) for f in settings_of(config_type)}
    try:
        return config_type(**values)
    except ValueError as error:  # the config's own checks: a message, not a traceback
        raise SystemExit(f"invalid setting: {error}") from error


def config_flags(config: object) -> list[str]:
    """The flags `add_config_flags` reads back as `config` (every field, explicitly)."""
    flags: list[str] = []
    for field in settings_of(type(config)):
        value = getattr(config, field.name)
        text = str(value).lower() if isinstance(value, bool) else repr(value)
        flags += [f"--{field.name.replace('_', '-')}", value if isinstance(value, str) else text]
    return flags


def setup_logging() -> None:
    """Plain INFO logging for step CLIs."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


@contextlib.contextmanager
def one_line_errors(prog: str) -> Iterator[None]:
    """End a step CLI on an expected error with one line: what failed and where the traceback
    went (a file; printed too with SEGPIPE_TRACEBACK=1)."""
    try:
        yield
    except (SegpipeError, *EXPECTED_BUILTINS) as error:
        if isinstance(error, SystemExit):
            raise
        detail = traceback.format_exc()
        if os.environ.get("SEGPIPE_TRACEBACK") == "1":
            sys.stderr.write(detail)
        name = prog.replace("python -m ", "").replace(".", "-")
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = os.path.join(tempfile.gettempdir(), f"segpipe-{name}-{stamp}-{os.getpid()}.log")
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(detail)
        print(f"{prog} failed: {error_summary(error)} (traceback: {path})", file=sys.stderr)
        raise SystemExit(getattr(error, "exit_code", 1)) from None
