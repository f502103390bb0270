"""What differs between two manifests: inputs added, removed and changed, by source id."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from components.common.data.manifest import ManifestRow

# a changed input names what changed: its image, its mask, its split, or its listing problem
_CHANGE_PARTS = {
    "image": ("image_path", "image_size", "image_identity"),
    "mask": ("mask_path", "mask_size", "mask_identity"),
    "split": ("split",),
    "problem": ("problem",),
}
SHOWN = 20  # ids listed per kind in a text summary; the JSON document lists all


@dataclass(frozen=True)
class ManifestDiff:
    """`new` against `old`: ids added and removed, changed ids with the parts that changed."""

    old_inputs: int
    new_inputs: int
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: dict[str, list[str]] = field(default_factory=dict)  # id -> ["mask", ...]

    @property
    def unchanged(self) -> int:
        return self.new_inputs - len(self.added) - len(self.changed)

    @property
    def identical(self) -> bool:
        return not (self.added or self.removed or self.changed)

    def counts(self) -> dict[str, int]:
        return {
            "added": len(self.added),
            "removed": len(self.removed),
            "changed": len(self.changed),
            "unchanged": self.unchanged,
        }

    def as_dict(self) -> dict[str, object]:
        """The JSON document (diff.json): counts and every id."""
        return {
            "old_inputs": self.old_inputs,
            "new_inputs": self.new_inputs,
            **self.counts(),
            "added_ids": self.added,
            "removed_ids": self.removed,
            "changed_ids": [{"source_id": k, "parts": v} for k, v in self.changed.items()],
        }

    def summary(self) -> str:
        """One line: `10 added, 0 removed, 1 changed, 239 unchanged`."""
        counts = self.counts()
        return ", ".join(f"{counts[k]} {k}" for k in ("added", "removed", "changed", "unchanged"))

    def lines(self, shown: int | None = SHOWN) -> list[str]:
        """The summary, then up to `shown` ids of each kind (None: all)."""
        out = [self.summary()]
        kinds = (
            ("added", self.added),
            ("removed", self.removed),
            ("changed", [f"{k} ({', '.join(v)})" for k, v in self.changed.items()]),
        )
        for kind, ids in kinds:
            if ids:
                limit = len(ids) if shown is None else shown
                more = f" ... and {len(ids) - limit} more" if len(ids) > limit else ""
                out.append(f"{kind}: {', '.join(ids[:limit])}{more}")
        return out


def _keyed(rows: Sequence[ManifestRow]) -> dict[str, ManifestRow]:
    """Rows by source id. Ids are unique among pairs; two rejected stray files may share a
    name (images/notes.txt, masks/notes.txt), so a repeated id takes its path as well."""
    counts = Counter(row.source_id for row in rows)
    keyed = {}
    for row in rows:
        key = row.source_id
        if counts[key] > 1:
            key = f"{key} [{row.image_path or row.mask_path}]"
        keyed[key] = row
    return keyed


def _changed_parts(old: ManifestRow, new: ManifestRow) -> list[str]:
    return [
        part
        for part, names in _CHANGE_PARTS.items()
        if any(getattr(old, n) != getattr(new, n) for n in names)
    ]


def diff_manifests(old: Sequence[ManifestRow], new: Sequence[ManifestRow]) -> ManifestDiff:
    """What `new` adds, removes and changes relative to `old` (ids sorted)."""
    before, after = _keyed(old), _keyed(new)
    changed = {}
    for key in sorted(before.keys() & after.keys()):
        parts = _changed_parts(before[key], after[key])
        if parts:
            changed[key] = parts
    return ManifestDiff(
        old_inputs=len(old),
        new_inputs=len(new),
        added=sorted(after.keys() - before.keys()),
        removed=sorted(before.keys() - after.keys()),
        changed=changed,
    )
