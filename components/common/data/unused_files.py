"""Files under the data root that are neither inputs nor rejects, each with the rule that
left it out: so every file there is accounted for."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from components.common import storage
from components.common.data.image_files import printable

IGNORED_FILE = "ignored.jsonl"  # written next to rejects.jsonl (preprocess) and the manifest


@dataclass(frozen=True)
class IgnoredFile:
    path: str
    rule: str

    def as_dict(self) -> dict[str, str]:
        return {"path": printable(self.path), "rule": self.rule}


def list_inputs(data_dir: str, config) -> tuple[list, list[IgnoredFile]]:
    """The pairs of `data_dir` in `config`'s layout and the files it leaves out.

    On gs:// one listing of the data root answers every folder's listing after it.
    """
    from components.common.data.sources import list_sources

    with storage.remember_listings():
        if data_dir.startswith("gs://"):
            storage.files_under(data_dir)
        pairs = list_sources(data_dir, config)
        return pairs, list_ignored(data_dir, config, pairs)


def list_ignored(data_dir: str, config, pairs) -> list[IgnoredFile]:
    """Every file under `data_dir` that no pair (input or reject) and no list file names.

    `config` is the PreprocessConfig whose layout read `pairs`.
    """
    used = {path for pair in pairs for path in (pair.image_path, pair.mask_path) if path}
    used = {_same_form(path) for path in used | set(_layout_files(data_dir, config))}
    root = data_dir.rstrip("/")
    ignored = []
    for path in storage.files_under(root):
        if _same_form(path) in used:
            continue
        relative = path[len(root) :].lstrip("/")
        ignored.append(IgnoredFile(path, _rule(relative, config)))
    return ignored


def _same_form(path: str) -> str:
    """Local paths as one spelling (`./data/x` and `data/x` are one file); gs:// as given."""
    return path if "://" in path else os.path.normpath(path)


def _layout_files(data_dir: str, config) -> list[str]:
    """Files the layout reads that are not inputs: its list files."""
    from components.common.data.sources import parse_list_files, resolve_path

    if config.layout == "list-files":
        return [resolve_path(data_dir, path) for path, _ in parse_list_files(config.list_files)]
    if config.layout == "voc":
        sets = storage.join(data_dir, "ImageSets", "Segmentation")
        return [storage.join(sets, f"{split}.txt") for split in ("train", "val", "test")]
    return []


def _rule(relative: str, config) -> str:
    """Why the layout left the file at `relative` (to the data root) out."""
    parts = relative.split("/")
    if any(part.startswith(".") for part in parts):
        return "hidden name (starts with '.'): never an input"
    if config.layout == "paired-folders":
        if parts[0] in ("images", "masks") and len(parts) > 2:
            return (
                f"in a sub-folder of {parts[0]}/: paired-folders reads only the files directly "
                "in images/ and masks/"
            )
        return "outside images/ and masks/: paired-folders reads only those two folders"
    if config.layout == "paired-globs":
        return f"matches neither image_glob {config.image_glob!r} nor any image's mask name"
    if config.layout == "list-files":
        return f"not named in the list files ({config.list_files})"
    if config.layout == "voc":
        return "not named by ImageSets/Segmentation/{train,val,test}.txt"
    return f"not read by the {config.layout} layout"


def write_ignored(path: str, ignored: list[IgnoredFile]) -> None:
    """`ignored` as JSON lines (path, rule) at a local or gs:// path; empty when none."""
    lines = [json.dumps(item.as_dict(), ensure_ascii=False) for item in ignored]
    storage.write_text(path, "".join(f"{line}\n" for line in lines), "application/jsonl")
