"""Data drift: this data set's statistics against those of the champion's training data.

Both sides are preprocess's stats.json (the champion's as its train run logged it), over all
splits. A class's *share* is its pixels over all labelled pixels (the ignore label is not
counted). The *class shift* is the largest absolute change of any class's share (0.3 -> 0.45:
0.15); the total variation distance is half the sum of the absolute changes (the share of
labelled pixels that would have to change class to turn one distribution into the other).
Image sizes are compared the same way (total variation over the share of images per size),
and the reject rate is rejected inputs over all inputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class DataDrift:
    """The comparison, or, when it cannot be made (`available` false), the reason."""

    available: bool
    reason: str = ""
    class_names: tuple[str, ...] = ()
    class_share: tuple[float, ...] = ()
    champion_class_share: tuple[float, ...] = ()
    class_shift: float = 0.0  # max over classes of |share - champion's share|
    shifted_class: str = ""  # the class with that largest shift
    class_tv: float = 0.0  # total variation distance between the class distributions
    image_size_share: dict[str, float] = field(default_factory=dict)
    champion_image_size_share: dict[str, float] = field(default_factory=dict)
    image_size_tv: float = 0.0
    reject_rate: float = 0.0
    champion_reject_rate: float = 0.0

    @classmethod
    def unavailable(cls, reason: str) -> DataDrift:
        return cls(False, reason)

    def metrics(self) -> dict[str, float]:
        """Flat MLflow metrics (`drift/...`); none when unavailable."""
        if not self.available:
            return {}
        metrics = {
            "drift/class_shift": self.class_shift,
            "drift/class_tv": self.class_tv,
            "drift/image_size_tv": self.image_size_tv,
            "drift/reject_rate": self.reject_rate,
            "drift/champion_reject_rate": self.champion_reject_rate,
        }
        for name, new, old in zip(
            self.class_names, self.class_share, self.champion_class_share, strict=True
        ):
            metrics[f"drift/class_share/{name}"] = new
            metrics[f"drift/champion_class_share/{name}"] = old
        return metrics


def _class_pixels(stats: dict) -> list[int]:
    totals = [0] * int(stats["num_classes"])
    for split in stats["splits"].values():
        for index, pixels in enumerate(split["class_pixels"]):
            totals[index] += int(pixels)
    return totals


def _image_sizes(stats: dict) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for split in stats["splits"].values():
        for size, count in split.get("image_sizes", {}).items():
            sizes[size] = sizes.get(size, 0) + int(count)
    return sizes


def _shares(counts: dict[str, int]) -> dict[str, float]:
    total = sum(counts.values())
    return {key: value / total for key, value in counts.items()} if total else {}


def _reject_rate(stats: dict) -> float:
    inputs = int(stats.get("inputs", 0))
    return int(stats.get("rejected", 0)) / inputs if inputs else 0.0


def compare_stats(stats: dict, champion_stats: dict) -> DataDrift:
    """This data set's stats.json against the champion's training stats.json."""
    try:
        names = tuple(stats["class_names"])
        champion_names = tuple(champion_stats["class_names"])
        if names != champion_names:
            return DataDrift.unavailable(
                f"the champion was trained on the classes {', '.join(champion_names)}; this data "
                f"set has {', '.join(names)}: their label distributions cannot be compared"
            )
        pixels, champion_pixels = _class_pixels(stats), _class_pixels(champion_stats)
        sizes, champion_sizes = _image_sizes(stats), _image_sizes(champion_stats)
        reject_rate, champion_reject_rate = _reject_rate(stats), _reject_rate(champion_stats)
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        return DataDrift.unavailable(f"a stats.json lacks what drift needs ({error!r})")
    if not sum(pixels) or not sum(champion_pixels):
        side = "this data set" if not sum(pixels) else "the champion's training data"
        return DataDrift.unavailable(f"{side} has no labelled pixels")
    share = [p / sum(pixels) for p in pixels]
    champion_share = [p / sum(champion_pixels) for p in champion_pixels]
    changes = [abs(a - b) for a, b in zip(share, champion_share, strict=True)]
    worst = max(range(len(changes)), key=changes.__getitem__)
    size_share, champion_size_share = _shares(sizes), _shares(champion_sizes)
    size_keys = size_share.keys() | champion_size_share.keys()
    size_tv = sum(abs(size_share.get(k, 0) - champion_size_share.get(k, 0)) for k in size_keys)
    return DataDrift(
        available=True,
        class_names=names,
        class_share=tuple(share),
        champion_class_share=tuple(champion_share),
        class_shift=changes[worst],
        shifted_class=names[worst],
        class_tv=sum(changes) / 2,
        image_size_share=size_share,
        champion_image_size_share=champion_size_share,
        image_size_tv=size_tv / 2,
        reject_rate=reject_rate,
        champion_reject_rate=champion_reject_rate,
    )
