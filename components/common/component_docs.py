"""Component docstrings completed with each setting's help, for the KFP input descriptions."""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable

from components.common.config import help_of, pipeline_settings


def with_setting_docs(func: Callable) -> Callable:
    """A copy of component function `func` whose docstring's `Args:` also lists every setting
    among its inputs, with the setting's help (kfp reads Google-style `Args:` into each
    input's description). The copy keeps `func`'s code, so kfp ships the same source."""
    settings = {f.name: f for _, f in pipeline_settings()}
    doc = inspect.cleandoc(func.__doc__ or "")
    documented = set(_documented(doc))
    lines = [
        f"    {name}: {help_of(settings[name])}"
        for name in inspect.signature(func).parameters
        if name in settings and name not in documented
    ]
    copy = types.FunctionType(
        func.__code__, func.__globals__, func.__name__, func.__defaults__, func.__closure__
    )
    copy.__kwdefaults__ = func.__kwdefaults__
    copy.__annotations__ = dict(func.__annotations__)
    copy.__module__, copy.__qualname__ = func.__module__, func.__qualname__
    copy.__doc__ = _add_args(doc, lines)
    return copy


def _documented(doc: str) -> list[str]:
    """The argument names already in `doc`'s Args section."""
    lines = doc.splitlines()
    if "Args:" not in lines:
        return []
    names = []
    for line in lines[lines.index("Args:") + 1 :]:
        if line and not line.startswith(" "):
            break
        if line.startswith("    ") and not line.startswith("     ") and ":" in line:
            names.append(line.strip().split(":", 1)[0])
    return names


def _add_args(doc: str, args: list[str]) -> str:
    """`doc` with `args` lines at the end of its Args section (made when it has none)."""
    if not args:
        return doc
    lines = doc.splitlines()
    if "Args:" not in lines:
        return "\n".join([*lines, "", "Args:", *args])
    end = lines.index("Args:") + 1
    while end < len(lines) and (not lines[end] or lines[end].startswith(" ")):
        end += 1
    while lines[end - 1] == "":
        end -= 1
    return "\n".join([*lines[:end], *args, *lines[end:]])
