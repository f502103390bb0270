"""Deterministic train/val/test assignment from a hash of the source id."""

from __future__ import annotations

import hashlib

SPLITS = ("train", "val", "test")


def assign_split(source_id: str, val_fraction: float, test_fraction: float = 0.0) -> str:
    """The split of `source_id`; depends on nothing else, so adding files never moves one."""
    digest = hashlib.sha256(source_id.encode("utf-8")).digest()
    position = int.from_bytes(digest[:8], "big") / 2**64
    if position < test_fraction:
        return "test"
    if position < test_fraction + val_fraction:
        return "val"
    return "train"
