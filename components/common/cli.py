"""Command-line flags generated from the config dataclasses, so a setting is declared once."""

from __future__ import annotations

import argparse
import dataclasses
import logging
from typing import Any, TypeVar

T = TypeVar("T")


def add_config_flags(parser: argparse.ArgumentParser, config_type: type) -> None:
    """Add `--field-name` for each field of a flat config dataclass, defaulting to its default."""
    group = parser.add_argument_group(config_type.__name__)
    for field in dataclasses.fields(config_type):
        default = field.default
        group.add_argument(
            f"--{field.name.replace('_', '-')}",
            dest=field.name,
            type=parse_bool if isinstance(default, bool) else type(default),
            default=default,
            help=f"(default: {default!r})",
        )


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
    values: dict[str, Any] = {
        f.name: getattr(args, f.name) for f in dataclasses.fields(config_type)
    }
    try:
        return config_type(**values)
    except ValueError as error:  # the config's own checks: a message, not a traceback
        raise SystemExit(f"invalid setting: {error}") from error


def config_flags(config: object) -> list[str]:
    """The flags `add_config_flags` reads back as `config` (every field, explicitly)."""
    flags: list[str] = []
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        text = str(value).lower() if isinstance(value, bool) else repr(value)
        flags += [f"--{field.name.replace('_', '-')}", value if isinstance(value, str) else text]
    return flags


def setup_logging() -> None:
    """Plain INFO logging for step CLIs."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
