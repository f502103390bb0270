"""A Markdown model card: what the model was trained on, how, how well, and why it shipped."""

from __future__ import annotations

from collections.abc import Mapping

MODEL_CARD_FILE = "MODEL_CARD.md"


def _table(rows: Mapping[str, object], left: str, right: str) -> list[str]:
    lines = [f"| {left} | {right} |", "|---|---|"]
    for key in sorted(rows):
        value = rows[key]
        text = f"{value:.4f}" if isinstance(value, float) else str(value)
        lines.append(f"| `{key}` | {text.replace('|', '/')} |")
    return lines or ["(none)"]


def render_model_card(
    model_name: str,
    version: str,
    *,
    train_run_id: str,
    pipeline_run_id: str,
    dataset_sha256: str | None,
    dataset_summary: Mapping[str, object],
    params: Mapping[str, object],
    metrics: Mapping[str, float],
    decision: str,
) -> str:
    """The card as Markdown; every section is present, saying 'unknown' rather than vanishing."""
    lines = [
        f"# {model_name} version {version}",
        "",
        "Semantic segmentation model trained and published by segpipe. Serving signature "
        "`serving_default`: encoded image bytes in, `class_ids` (uint8, the input's size) out.",
        "",
        "## Data",
        "",
        f"- stats.json sha256: `{dataset_sha256 or 'unknown'}`",
    ]
    lines += [f"- {key}: {value}" for key, value in dataset_summary.items()]
    lines += ["", "## Training", "", f"- MLflow run: `{train_run_id}`"]
    lines += [f"- pipeline run: `{pipeline_run_id}`", ""]
    lines += _table(params, "parameter", "value") if params else ["(parameters unknown)"]
    lines += ["", "## Evaluation", ""]
    lines += _table(metrics, "metric", "value") if metrics else ["(no evaluation found)"]
    lines += ["", "## Decision", "", decision or "unknown", ""]
    return "\n".join(lines)
