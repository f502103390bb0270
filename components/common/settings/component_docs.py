"""Component docstrings completed with each setting's help, for the KFP input descriptions."""

from __future__ import annotations

from components.common.settings.config import help_of, pipeline_settings


def setting_docs(doc: str, names: list[str]) -> str:
    """`doc` with its `Args:` also listing the settings `names` not already there, each with
    its help (kfp reads Google-style `Args:` into each input's description)."""
    settings = {f.name: f for _, f in pipeline_settings()}
    documented = set(_documented(doc))
    lines = [
        f"    {name}: {help_of(settings[name])}"
        for name in names
        if name in settings and name not in documented
    ]
    return _add_args(doc, lines)


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
