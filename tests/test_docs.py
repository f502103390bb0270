"""The docs stay true: their links resolve, the commands in their code blocks name real make
targets, segpipe commands and step CLIs with real flags, and the settings reference is the
code's."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import re
import shlex
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```(\w*)\s*$")


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    anchors, in_code = set(), False
    for line in page.read_text().splitlines():
        if FENCE.match(line):
            in_code = not in_code
        elif not in_code and line.startswith("#"):
            anchors.add(_slug(line.lstrip("#")))
    return anchors


def _prose(page: Path) -> str:
    """`page` without its code blocks."""
    kept, in_code = [], False
    for line in page.read_text().splitlines():
        if FENCE.match(line):
            in_code = not in_code
        elif not in_code:
            kept.append(line)
    return "\n".join(kept)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_link_resolves(page):
    broken = []
    for target in LINK.findall(_prose(page)):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists():
            broken.append(f"{target}: no {resolved.relative_to(REPO)}")
        elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
            broken.append(f"{target}: no heading #{anchor} in {resolved.name}")
    assert broken == [], f"{page.name}: {broken}"


def _commands(page: Path) -> list[str]:
    """The shell commands in `page`'s bash (or untyped) code blocks, continuations joined."""
    commands, block, kind = [], None, ""
    for line in page.read_text().splitlines():
        fence = FENCE.match(line)
        if fence:
            if block is None:
                block, kind = [], fence[1]
            else:
                if kind in ("bash", "sh", "shell"):
                    commands += _joined(block)
                block = None
            continue
        if block is not None:
            block.append(line)
    return commands


def _joined(lines: list[str]) -> list[str]:
    commands, current = [], ""
    for line in lines:
        line = line.split(" #", 1)[0] if not line.lstrip().startswith("#") else ""
        current += line.rstrip().removesuffix("\\") + " "
        if not line.rstrip().endswith("\\"):
            if current.strip():
                commands.append(current.strip())
            current = ""
    return commands


def _make_targets() -> set[str]:
    text = (REPO / "Makefile").read_text()
    return set(re.findall(r"^([A-Za-z][\w-]*):", text, re.M))


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _flags(parser: argparse.ArgumentParser) -> set[str]:
    return {flag for action in parser._actions for flag in action.option_strings}


def _step_cli_help(module: str) -> str:
    """`python -m <module> --help`'s text, in-process."""
    main = importlib.import_module(f"{module}.__main__").main
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        main(["--help"])
    return out.getvalue()


def _beam_options() -> set[str]:
    from apache_beam.options.pipeline_options import PipelineOptions

    return set(PipelineOptions([]).get_all_options(retain_unknown_options=False))


def _problems(command: str, targets: set[str], segpipe: dict) -> list[str]:
    try:
        words = shlex.split(command)
    except ValueError:
        return []
    words = [w for w in words if "=" not in w or w.startswith("-")]  # drop VAR=value
    if not words:
        return []
    program, rest = Path(words[0]).name, words[1:]
    flags = [w.split("=", 1)[0] for w in rest if w.startswith("--")]
    if program == "make":
        return [f"make {t}: no such target" for t in rest[:1] if t not in targets]
    if program == "segpipe":
        if not rest or rest[0] not in segpipe:
            return [f"segpipe {rest[:1]}: no such command"]
        known = _flags(segpipe[rest[0]])
        return [f"segpipe {rest[0]} {flag}: no such flag" for flag in flags if flag not in known]
    if program.startswith("python") and rest[:1] == ["-m"] and rest[1].startswith("components."):
        text = _step_cli_help(rest[1])
        if rest[1] == "components.preprocess":  # Beam's own options pass through to Beam
            flags = [flag for flag in flags if flag[2:] not in _beam_options()]
        return [
            f"{rest[1]} {flag}: no such flag"
            for flag in flags
            if not re.search(re.escape(flag) + r"(?![\w-])", text)
        ]
    return []


def test_commands_in_the_docs_name_real_targets_and_flags():
    from pipelines.cli.main import build_parser

    targets, segpipe = _make_targets(), _subparsers(build_parser())
    problems, checked = [], 0
    for page in PAGES:
        for command in _commands(page):
            found = _problems(command, targets, segpipe)
            problems += [f"{page.name}: {p}" for p in found]
            checked += 1
    assert checked > 40  # the docs do hold commands: this test reads them
    assert problems == []


def test_a_wrong_flag_or_target_is_caught():
    from pipelines.cli.main import build_parser

    targets, segpipe = _make_targets(), _subparsers(build_parser())
    assert _problems("segpipe run --date x", targets, segpipe) == [
        "segpipe run --date: no such flag"
    ]
    assert _problems("make rnu", targets, segpipe) == ["make rnu: no such target"]
    assert _problems("python -m components.train --epoch 3", targets, segpipe)
    assert not _problems(".venv/bin/segpipe run --data d --param epochs=3", targets, segpipe)


def test_the_settings_reference_is_generated_from_the_code():
    from pipelines.cli.params import settings_reference

    page = (REPO / "docs" / "settings.md").read_text()
    assert settings_reference() in page, "run make settings-doc"


def test_the_settings_reference_lists_what_segpipe_params_lists():
    from components.common.settings.config import PipelineConfig
    from pipelines.cli.params import describe_parameters

    listed = describe_parameters(width=200)
    reference = (REPO / "docs" / "settings.md").read_text()
    for name in PipelineConfig().parameters():
        assert f"  {name} " in listed, name
        assert f"| `{name}` |" in reference, name
