"""The promotion gate: a pure decision from candidate and champion scores."""

from __future__ import annotations

from dataclasses import dataclass

from components.common.config import GatePolicy


@dataclass(frozen=True)
class Decision:
    passed: bool
    reason: str


def decide(candidate: float, champion: float | None, policy: GatePolicy) -> Decision:
    """Pass when the candidate's mean IoU meets the floor and is not below the champion's."""
    if not candidate >= policy.min_mean_iou:  # also rejects NaN
        return Decision(
            False, f"mean IoU {candidate:.4f} is below the minimum {policy.min_mean_iou:.4f}"
        )
    if champion is None:
        return Decision(
            True,
            f"mean IoU {candidate:.4f} meets the minimum {policy.min_mean_iou:.4f}"
            "; no champion yet",
        )
    if candidate < champion:
        return Decision(False, f"mean IoU {candidate:.4f} is below the champion's {champion:.4f}")
    return Decision(
        True,
        f"mean IoU {candidate:.4f} meets the minimum {policy.min_mean_iou:.4f} "
        f"and is not below the champion's {champion:.4f}",
    )
