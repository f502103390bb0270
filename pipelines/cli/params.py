"""Pipeline parameters on the command line: `--param`/`--preset`, their parsing, and
`segpipe params`, which lists them."""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import re
import shutil
import textwrap

from components.common.cli import parse_bool
from components.common.settings.config import (
    ClusterConfig,
    PipelineConfig,
    help_of,
    pipeline_setting_types,
    pipeline_settings,
)
from pipelines.presets import PRESETS, preset_parameters

PARAM_HELP = (
    "a pipeline parameter, repeatable; `segpipe params` lists every one with its type, "
    "default and help"
)
# `segpipe params` groups the parameters by the step that reads them
SECTION_TITLES = {
    "pipeline": "every step",
    "snapshot": "snapshot (schedule sets skip_unchanged=true unless given)",
    "preprocess": "preprocess",
    "train": "train",
    "gate": "evaluate (the gate)",
    "publish": "publish (model_name and alias are read by train and evaluate too)",
    "cluster": "cluster only (compile, submit, schedule; segpipe run refuses them)",
}
NBSP = "\u00a0"  # textwrap does not break lines here
DATA_DIR = (
    "data_dir",
    "str",
    "(--data)",
    "the data folder (local or gs://) of image and mask pairs",
)


def parse_params(
    pairs: list[str], local: bool = False, preset: str | None = None
) -> dict[str, object]:
    """A preset's parameters overlaid with `k=v` strings, typed by the parameter's type, then
    checked as settings: every refusal happens here, before any work."""
    types = pipeline_setting_types()
    cluster_only = {f.name for f in dataclasses.fields(ClusterConfig)}
    try:
        params = preset_parameters(preset)
    except ValueError as error:
        raise SystemExit(str(error)) from error
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--param expects key=value, got {pair!r}")
        if key not in types:
            raise SystemExit(_unknown(key, list(types)))
        if local and key in cluster_only:
            raise SystemExit(f"--param {key} only takes effect on a cluster (segpipe submit)")
        kind = types[key]
        try:
            params[key] = parse_bool(value) if kind is bool else kind(value)
        except ValueError as error:
            allowed = {bool: "true or false", int: "an int", float: "a float"}.get(kind, "valid")
            raise SystemExit(f"--param {key}: {value!r} is not {allowed}") from error
    try:  # the settings' own checks and the rules across steps
        PipelineConfig().with_parameters(params)
    except ValueError as error:
        raise SystemExit(f"segpipe: invalid setting: {error}") from error
    return params


def _unknown(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(close)}?" if close else ""
    return f"unknown pipeline parameter {key!r}{hint} (`segpipe params` lists them all)"


def _shown(value: object) -> str:
    """A value as `--param` takes it."""
    if isinstance(value, bool):
        return str(value).lower()
    return str(value) if value != "" else '""'


def describe_parameters(preset: str | None = None, width: int = 100) -> str:
    """Every pipeline parameter, grouped by step: name, type, value and help; with `preset`,
    its values replace the defaults and each says what the default was."""
    overrides = preset_parameters(preset)
    defaults = PipelineConfig().parameters()
    types = pipeline_setting_types()
    rows: dict[str, list[tuple[str, str, str, str]]] = {"pipeline": [DATA_DIR]}
    for section, setting in pipeline_settings():
        name = setting.name
        text = help_of(setting)
        if name in overrides:  # marked, and the default it replaces said
            text += f" (default {_shown(defaults[name])})"
            name = f"*{name}"
        value = overrides.get(setting.name, defaults[setting.name])
        rows.setdefault(section, []).append(
            (name, types[setting.name].__name__, _shown(value), text)
        )
    every = [row for group in rows.values() for row in group]
    name_w = max(len(row[0].lstrip("*")) for row in every)
    value_w = min(max(len(row[2]) for row in every), 18)
    help_at = 2 + name_w + 2 + 5 + 2 + value_w + 2
    lines = ["Pipeline parameters: segpipe run/compile/submit/schedule --param NAME=VALUE"]
    if preset:
        lines.append(f"* set by --preset {preset} (values shown are the preset's)")
    for section, group in rows.items():
        lines += ["", SECTION_TITLES[section]]
        for name, kind, value, text in group:
            name = f"* {name[1:]}" if name.startswith("*") else f"  {name}"
            head = f"{name:<{name_w + 2}}  {kind:<5}  {value:<{value_w}}  "
            if len(head) > help_at:  # a long value: its help starts on the next line
                lines.append(head.rstrip())
                head = " " * help_at
            wrapped = _wrap(text, max(width - help_at, 30))
            lines.append(head + wrapped[0])
            lines += [" " * help_at + rest for rest in wrapped[1:]]
    return "\n".join(lines)


REFERENCE_START = "<!-- settings reference: generated by `make settings-doc`, do not edit -->"
REFERENCE_END = "<!-- end of the settings reference -->"


def settings_reference() -> str:
    """Every pipeline parameter as Markdown tables, one per step: what docs/settings.md holds
    between REFERENCE_START and REFERENCE_END."""
    defaults = PipelineConfig().parameters()
    types = pipeline_setting_types()
    lines = [REFERENCE_START]
    current = None
    for section, setting in pipeline_settings():
        if section != current:
            current = section
            lines += ["", f"### {SECTION_TITLES[section]}", ""]
            lines += ["| setting | type | default | what it does |", "|---|---|---|---|"]
        value = _shown(defaults[setting.name]).replace("|", "\\|")
        text = help_of(setting).replace("|", "\\|")
        lines.append(f"| `{setting.name}` | {types[setting.name].__name__} | `{value}` | {text} |")
    return "\n".join([*lines, "", REFERENCE_END])


def write_settings_reference(path: str) -> None:
    """Replace the reference in the Markdown page `path` (appended when it has none)."""
    with open(path, encoding="utf-8") as handle:
        page = handle.read()
    before, _, rest = page.partition(REFERENCE_START)
    _, _, after = rest.partition(REFERENCE_END)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(
            before.rstrip("\n") + "\n\n" + settings_reference() + after.rstrip("\n") + "\n"
        )


def _wrap(text: str, width: int) -> list[str]:
    """`text` in lines of `width`, a short range like `[>= 1]` or `[in [0, 1)]` kept whole."""
    keep = re.sub(r"\[(>=|>|<=|<|in) [^\]]*\]+", lambda m: m[0].replace(" ", NBSP), text)
    lines = textwrap.wrap(keep, width, break_on_hyphens=False) or [""]
    return [line.replace(NBSP, " ") for line in lines]


def cmd_params(args: argparse.Namespace) -> int:
    width = shutil.get_terminal_size((100, 24)).columns
    print(describe_parameters(args.preset, width))
    return 0


def add_param_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--param", action="append", default=[], metavar="NAME=VALUE", help=PARAM_HELP
    )


def add_preset_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        help="start from a named parameter set (--param still overrides), e.g. camvid",
    )


def add_commands(commands: argparse._SubParsersAction) -> None:
    """`segpipe params`, as a sub-command of `commands`."""
    listing = commands.add_parser(
        "params",
        help="list every pipeline parameter (--param NAME=VALUE): type, default, help",
        description="Every pipeline parameter, grouped by the step that reads it.",
    )
    add_preset_option(listing)
    listing.set_defaults(func=cmd_params)
