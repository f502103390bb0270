"""The snapshot's Markdown report: the KFP UI shows it as the step's output."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from components.snapshot.snapshot import Snapshot

REPORT_FILE = "report.md"
SHOWN = 50  # ids listed per kind; diff.json lists all


def headline(result: Snapshot, skip_unchanged: bool) -> str:
    """One sentence: unchanged (and whether the run ends), or what changed since the champion."""
    baseline = result.baseline.label()
    if result.skipped:
        return (
            f"Unchanged since {baseline}: nothing to do. Data and training settings equal the "
            "champion's, so the run ends here (skip_unchanged)."
        )
    if result.unchanged:
        return (
            f"Unchanged since {baseline}; skip_unchanged is off, so the run goes on "
            f"(skip_unchanged={str(skip_unchanged).lower()})."
        )
    if result.baseline.version is None and not result.baseline.unreadable:
        return f"No champion yet: {result.info.inputs} inputs, all new."
    if result.lineage_warning:  # fail closed, loudly: nothing trustworthy to compare with
        return f"WARNING: {result.lineage_warning}."
    if not result.baseline.data_fingerprint:  # fail closed: nothing to compare with
        return f"Not compared with {baseline}: {result.baseline.note}."
    what = []
    if not result.data_unchanged:
        what.append(f"data changed ({result.diff.summary()})" if result.diff else "data changed")
    if not result.settings_unchanged:
        what.append("training settings changed")
    return f"Since {baseline}: {' and '.join(what)}; the run goes on."


def render_report(result: Snapshot, skip_unchanged: bool) -> str:
    """Headline, the data's identity, then the inputs added, removed and changed."""
    info = result.info
    rejected = f" ({result.rejected_at_listing} rejected while listing)"
    lines = [
        "# Data snapshot",
        "",
        f"**{headline(result, skip_unchanged)}**",
        "",
        "| | |",
        "|---|---|",
        f"| data | `{info.data_dir}` |",
        f"| inputs | {info.inputs}{rejected if result.rejected_at_listing else ''} |",
        f"| ignored | {result.ignored} files that are neither inputs nor rejects "
        "(ignored.jsonl: each with its rule) |",
        f"| listed in | {result.listing_seconds:.2f} s |",
        f"| data fingerprint | `{info.data_fingerprint}` |",
        f"| manifest sha256 | `{info.manifest_sha256}` |",
        f"| training settings sha256 | `{info.train_settings_sha256}` |",
        f"| compared with | {result.baseline.label()} |",
    ]
    if result.baseline.note:
        lines.append(f"| note | {result.baseline.note} |")
    if result.diff is not None:
        lines += ["", f"## Changes: {result.diff.summary()}"]
        changed = [f"`{k}` ({', '.join(v)})" for k, v in result.diff.changed.items()]
        for kind, ids in (
            ("Added", [f"`{k}`" for k in result.diff.added]),
            ("Removed", [f"`{k}`" for k in result.diff.removed]),
            ("Changed", changed),
        ):
            if ids:
                more = f", ... and {len(ids) - SHOWN} more" if len(ids) > SHOWN else ""
                lines += ["", f"**{kind}** ({len(ids)}): " + ", ".join(ids[:SHOWN]) + more]
    return "\n".join(lines) + "\n"
