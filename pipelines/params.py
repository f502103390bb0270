"""Pipeline parameters on the command line: `--param`/`--preset` options and their parsing."""

from __future__ import annotations

import argparse
import dataclasses

from components.common.cli import parse_bool
from components.common.config import ClusterConfig, PipelineConfig
from components.common.presets import PRESETS, preset_parameters


def parse_params(
    pairs: list[str], local: bool = False, preset: str | None = None
) -> dict[str, object]:
    """A preset's parameters overlaid with `k=v` strings, typed by the parameter's default."""
    defaults = PipelineConfig().parameters()
    cluster_only = set(dataclasses.asdict(ClusterConfig()))
    try:
        params = preset_parameters(preset)
    except ValueError as error:
        raise SystemExit(str(error)) from error
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--param expects key=value, got {pair!r}")
        if key not in defaults:
            raise SystemExit(f"unknown pipeline parameter {key!r}; known: {', '.join(defaults)}")
        if local and key in cluster_only:
            raise SystemExit(f"--param {key} only takes effect on a cluster (segpipe submit)")
        kind = type(defaults[key])
        try:
            params[key] = parse_bool(value) if kind is bool else kind(value)
        except ValueError as error:
            raise SystemExit(f"--param {key}: {value!r} is not a valid {kind.__name__}") from error
    try:  # the settings' own checks, before any step runs
        PipelineConfig().with_parameters(params)
    except ValueError as error:
        raise SystemExit(f"segpipe: invalid setting: {error}") from error
    return params


def add_param_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE")


def add_preset_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        help="start from a named parameter set (--param still overrides), e.g. camvid",
    )
