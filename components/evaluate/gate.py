"""The promotion gate: a pure decision from candidate and champion scores."""

from __future__ import annotations

import math
from dataclasses import dataclass

from components.common.config import GatePolicy
from components.evaluate.metrics import SegmentationMetrics

TOLERANCE = 1e-12  # 0.8 - 0.7 is 0.10000000000000009: an allowed drop of 0.1 must pass it


@dataclass(frozen=True)
class Decision:
    passed: bool
    reason: str


def _mean_iou(scores: SegmentationMetrics | float) -> float:
    return scores.mean_iou if isinstance(scores, SegmentationMetrics) else float(scores)


def _worst_class_drop(
    candidate: SegmentationMetrics, champion: SegmentationMetrics, class_names: tuple[str, ...]
) -> tuple[str, float, float, float] | None:
    """(name, candidate IoU, champion IoU, drop) of the class that lost most, if any scored."""
    worst = None
    pairs = zip(candidate.per_class_iou, champion.per_class_iou, strict=True)
    for index, (new, old) in enumerate(pairs):
        if math.isnan(old):
            continue  # the champion has no score to defend here
        new = 0.0 if math.isnan(new) else new  # same eval data: NaN means it vanished
        if worst is None or old - new > worst[3]:
            name = class_names[index] if index < len(class_names) else f"class_{index}"
            worst = (name, new, old, old - new)
    return worst


def decide(
    candidate: SegmentationMetrics | float,
    champion: SegmentationMetrics | float | None,
    policy: GatePolicy,
    class_names: tuple[str, ...] = (),
) -> Decision:
    """Pass when the candidate clears the floor and drops no more than the policy allows.

    Rules in order: mean IoU >= `min_mean_iou` (NaN never passes); with no champion, that is
    all; else the mean IoU may fall at most `max_drop` below the champion's, and, when
    `max_class_drop` >= 0 and both are metrics objects, no class IoU may fall by more than it.
    """
    score = _mean_iou(candidate)
    if not score >= policy.min_mean_iou:  # also rejects NaN
        return Decision(
            False, f"mean IoU {score:.4f} is below the minimum {policy.min_mean_iou:.4f}"
        )
    if champion is None:
        return Decision(
            True,
            f"mean IoU {score:.4f} meets the minimum {policy.min_mean_iou:.4f}; no champion yet",
        )
    best = _mean_iou(champion)
    if best - score > policy.max_drop + TOLERANCE:
        allowed = f" (allowed drop {policy.max_drop:.4f})" if policy.max_drop else ""
        return Decision(False, f"mean IoU {score:.4f} is below the champion's {best:.4f}{allowed}")
    per_class = ""
    if (
        policy.max_class_drop >= 0
        and isinstance(candidate, SegmentationMetrics)
        and isinstance(champion, SegmentationMetrics)
    ):
        worst = _worst_class_drop(candidate, champion, class_names)
        if worst is not None and worst[3] > policy.max_class_drop + TOLERANCE:
            name, new, old, drop = worst
            return Decision(
                False,
                f"IoU of class {name} fell from the champion's {old:.4f} to {new:.4f}, "
                f"a drop of {drop:.4f} (allowed {policy.max_class_drop:.4f})",
            )
        per_class = f"; no class IoU dropped by more than {policy.max_class_drop:.4f}"
    relation = "is not below" if score >= best else "is within the allowed drop of"
    return Decision(
        True,
        f"mean IoU {score:.4f} meets the minimum {policy.min_mean_iou:.4f} "
        f"and {relation} the champion's {best:.4f}{per_class}",
    )
