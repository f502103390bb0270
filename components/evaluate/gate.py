"""The promotion gate: a pure decision from candidate and champion scores."""

from __future__ import annotations

import math
from dataclasses import dataclass

from components.common.settings.config import ANY_CLASS, GatePolicy
from components.evaluate.drift import DataDrift
from components.evaluate.metrics import SegmentationMetrics

TOLERANCE = 1e-12  # 0.8 - 0.7 is 0.10000000000000009: an allowed drop of 0.1 must pass it


@dataclass(frozen=True)
class Decision:
    passed: bool
    reason: str


def check_policy(policy: GatePolicy, class_names: tuple[str, ...]) -> None:
    """Refuse, before any scoring, an `allow_absent_classes` that names no class of the data set."""
    allowed = policy.absent_classes_allowed()
    unknown = [n for n in allowed if n not in class_names and n != ANY_CLASS]
    if unknown:
        raise ValueError(
            f"allow_absent_classes names {', '.join(unknown)}, not classes of this data set "
            f"({', '.join(class_names)}); use class names, or {ANY_CLASS} for any class"
        )


def _class_name(index: int, class_names: tuple[str, ...]) -> str:
    return class_names[index] if index < len(class_names) else f"class_{index}"


def _absent_classes(
    candidate: SegmentationMetrics, policy: GatePolicy, class_names: tuple[str, ...]
) -> tuple[list[str], list[str]]:
    """(absent and not allowed, absent and allowed): classes with no truth pixels to judge."""
    allowed = policy.absent_classes_allowed()
    refused, excused = [], []
    for index, count in enumerate(candidate.truth_pixels):
        if count == 0:
            name = _class_name(index, class_names)
            (excused if ANY_CLASS in allowed or name in allowed else refused).append(name)
    return refused, excused


def _absent_reason(names: list[str], split: str) -> str:
    plural = len(names) > 1
    return (
        f"class{'es' if plural else ''} {', '.join(names)} ha{'ve' if plural else 's'} no "
        f"ground-truth pixels in the {split} split, so the gate cannot judge "
        f"{'them' if plural else 'it'} (a label lost in preprocessing?); if that is expected "
        f"for this data set, allow it with allow_absent_classes={','.join(names)}"
    )


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
            name = _class_name(index, class_names)
            worst = (name, new, old, old - new)
    return worst


def _class_shift_refusal(
    champion: SegmentationMetrics | float | None, drift: DataDrift | None, policy: GatePolicy
) -> str | None:
    """Why the label distribution stops the run (see drift.py for the measure), if it does."""
    if policy.max_class_shift < 0 or champion is None:
        return None
    if drift is None or not drift.available:
        # Fail closed: the user asked for a bound that nobody can check.
        why = drift.reason if drift is not None else "no data statistics were compared"
        return (
            f"max_class_shift={policy.max_class_shift} is set, but the shift from the "
            f"champion's training data cannot be measured: {why}"
        )
    if drift.class_shift > policy.max_class_shift + TOLERANCE:
        index = drift.class_names.index(drift.shifted_class)
        return (
            f"the label distribution moved: class {drift.shifted_class} is "
            f"{drift.class_share[index]:.4f} of the labelled pixels, "
            f"{drift.champion_class_share[index]:.4f} in the champion's training data, a shift "
            f"of {drift.class_shift:.4f} (allowed max_class_shift {policy.max_class_shift:.4f})"
        )
    return None


def decide(
    candidate: SegmentationMetrics | float,
    champion: SegmentationMetrics | float | None,
    policy: GatePolicy,
    class_names: tuple[str, ...] = (),
    drift: DataDrift | None = None,
) -> Decision:
    """Pass when the candidate clears the floor and drops no more than the policy allows.

    Rules in order: for a metrics object, every class has ground-truth pixels in the eval split
    unless `allow_absent_classes` excuses it (a bare float carries no classes); when
    `max_class_shift` >= 0 and there is a champion, `drift` (this data against the champion's
    training data) is measured and no class's pixel share moved by more (unmeasurable fails);
    mean IoU >= `min_mean_iou` (NaN never passes); with no champion, that is all; else the mean
    IoU may fall at most `max_drop` below the champion's, and, when `max_class_drop` >= 0 and
    both are metrics objects, no class IoU may fall by more than it.
    """
    excused_note = ""
    if isinstance(candidate, SegmentationMetrics):
        if len(candidate.truth_pixels) != len(candidate.per_class_iou):
            # Fail closed: without the counts nobody can tell whether a class vanished.
            return Decision(
                False, "the scores carry no per-class pixel counts: cannot check absent classes"
            )
        refused, excused = _absent_classes(candidate, policy, class_names)
        if refused:
            return Decision(False, _absent_reason(refused, policy.eval_split))
        if excused:
            excused_note = f"; absent from the {policy.eval_split} split (allowed): " + ", ".join(
                excused
            )
    refusal = _class_shift_refusal(champion, drift, policy)
    if refusal:
        return Decision(False, refusal)
    decision = _decide_scores(candidate, champion, policy, class_names)
    if decision.passed and champion is not None and policy.max_class_shift >= 0 and drift:
        excused_note += (
            f"; largest class share shift {drift.class_shift:.4f} "
            f"(allowed {policy.max_class_shift:.4f})"
        )
    if decision.passed and excused_note:
        return Decision(True, decision.reason + excused_note)
    return decision


def _decide_scores(
    candidate: SegmentationMetrics | float,
    champion: SegmentationMetrics | float | None,
    policy: GatePolicy,
    class_names: tuple[str, ...],
) -> Decision:
    """The score rules of `decide` (floor, champion, per-class drop)."""
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
