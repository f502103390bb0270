"""Data-set checks after the Beam job: masks read in an encoding that loses a class."""

from __future__ import annotations

from components.common.errors import SegpipeError
from components.common.settings.config import IGNORE_LABEL, PreprocessConfig


class UnusableLabels(SegpipeError, RuntimeError):
    """The masks, as read with these settings, would train a model that misses a class."""

    reason = "unusable-labels"


class UnusableSplits(SegpipeError, RuntimeError):
    """A split training or evaluation needs came out empty."""

    reason = "unusable-splits"


def check_splits(stats: dict, config: PreprocessConfig) -> None:
    """Refuse a data set whose train or val split is empty: training validates on val (and
    evaluate scores it by default), so it would fail later, inside training."""
    written = {name: split["examples"] for name, split in stats["splits"].items()}
    empty = [name for name in ("train", "val") if not written.get(name)]
    if not empty:
        return
    counts = ", ".join(f"{name} {count}" for name, count in written.items())
    raise UnusableSplits(
        f"the {' and '.join(empty)} split{'s are' if len(empty) > 1 else ' is'} empty "
        f"({counts} of {stats['inputs']} inputs, {stats['rejected']} rejected): with "
        f"val_fraction={config.val_fraction} and test_fraction={config.test_fraction} (each "
        "input's split is fixed by a hash of its id), or the layout's own split lists, no "
        "input landed there. Add inputs, raise val_fraction, or list val inputs in the layout"
    )


def check_encoding(stats: dict, config: PreprocessConfig) -> None:
    """Refuse 0/255 (and 0/1/255, anti-aliased) masks read as class indices.

    Under `mask_encoding=index`, 255 is the ignore label: when 255 outnumbers every other
    non-zero mask value together, it is the foreground of binary masks, not a thin "ignore"
    border as in Pascal VOC (whose classes far outnumber it), and every foreground pixel
    would be ignored. `ignore_values` naming 255 says it does mean unlabelled.
    """
    ignored = set(config.ignore_value_list())
    if config.mask_encoding != "index" or IGNORE_LABEL in ignored:
        return
    values = {int(value): pixels for value, pixels in stats.get("mask_values", {}).items()}
    at_255 = values.get(IGNORE_LABEL, 0)
    other = sum(n for v, n in values.items() if v not in (0, IGNORE_LABEL) and v not in ignored)
    if at_255 > other:
        raise UnusableLabels(
            f"the masks look like 0/255 binary masks: {at_255:,} pixels are 255 and "
            f"{other:,} hold another non-zero value; with mask_encoding=index, 255 is the "
            "ignore label, so their foreground would be lost. Use mask_encoding=binary "
            "(values >= binary_threshold become class 1), or set ignore_values=255 if 255 "
            "does mark unlabelled pixels"
        )


def check_classes(stats: dict, config: PreprocessConfig) -> None:
    """Refuse a data set whose train split holds no pixel of some class (unless allowed)."""
    if config.allow_empty_train_classes:
        return
    train = stats["splits"]["train"]
    if train["examples"] == 0:
        raise UnusableLabels(
            "the train split is empty: no example was written to it "
            f"(val_fraction={config.val_fraction}, test_fraction={config.test_fraction}, "
            "or the layout's own splits); a model cannot be trained from nothing"
        )
    empty = [
        f"{class_id} ({name})"
        for class_id, (name, pixels) in enumerate(
            zip(stats["class_names"], train["class_pixels"], strict=True)
        )
        if pixels == 0
    ]
    if empty:
        raise UnusableLabels(
            f"no train pixels of class {', '.join(empty)} (after resizing to "
            f"{config.image_height}x{config.image_width}): the model could never learn it. "
            "Check mask_encoding, ignore_values and num_classes against the masks "
            f"(stats.json mask_values: {_shown(stats)}), or set allow_empty_train_classes=true "
            "if the class is meant to be absent"
        )


def _shown(stats: dict) -> str:
    values = stats.get("mask_values", {})
    shown = ", ".join(f"{v}: {n}" for v, n in list(values.items())[:12])
    return "{" + shown + (", ..." if len(values) > 12 else "") + "}"
