"""The evaluation report: a self-contained HTML page and a per-image Parquet table."""

from __future__ import annotations

import base64
import html
import math

import numpy as np

from components.common.overlay import blend, colorize, palette, png_bytes
from components.evaluate.drift import DataDrift
from components.evaluate.metrics import SegmentationMetrics
from components.evaluate.scoring import ModelScores, Sample

STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; }
.legend .swatch { display: inline-block; width: 1em; height: 1em; margin: 0 0.3em 0 1em;
  vertical-align: middle; border: 1px solid #888; }
table { border-collapse: collapse; margin: 1em 0; }
td, th { border: 1px solid #ccc; padding: 4px 8px; text-align: right; }
th { background: #f3f3f3; }
.pass { color: #0a7a2f; } .fail { color: #b00020; }
figure { display: inline-block; margin: 0 1em 1em 0; }
img { image-rendering: pixelated; height: 160px; }
"""


def write_image_table(path: str, candidate: ModelScores, champion: ModelScores | None) -> None:
    """One row per eval image: its id, the candidate's (and champion's) mean IoU and accuracy."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = {
        "source_id": [s.source_id for s in candidate.images],
        "labelled_pixels": [s.labelled_pixels for s in candidate.images],
        "mean_iou": [s.mean_iou for s in candidate.images],
        "pixel_accuracy": [s.pixel_accuracy for s in candidate.images],
    }
    if champion is not None:
        by_id = {s.source_id: s for s in champion.images}
        columns["champion_mean_iou"] = [
            by_id[s.source_id].mean_iou if s.source_id in by_id else None for s in candidate.images
        ]
    pq.write_table(pa.table(columns), path)


def _fmt(value: float | None) -> str:
    return "–" if value is None or math.isnan(value) else f"{value:.4f}"


def _data_uri(array: np.ndarray) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(array)).decode("ascii")


def _heat_map(confusion: np.ndarray, names: tuple[str, ...]) -> str:
    """The confusion matrix as a table, each cell shaded by its share of the truth row."""
    rows = confusion.sum(axis=1, keepdims=True)
    share = np.divide(confusion, rows, out=np.zeros(confusion.shape), where=rows > 0)
    head = "".join(f"<th>{html.escape(n)}</th>" for n in names)
    body = []
    for name, counts, fractions in zip(names, confusion, share, strict=True):
        cells = "".join(
            f'<td style="background: rgba(0, 90, 200, {f:.3f}); '
            f'color: {"#fff" if f > 0.5 else "#222"}" '
            f'title="{f:.1%} of {html.escape(name)}">{c}</td>'
            for c, f in zip(counts, fractions, strict=True)
        )
        body.append(f"<tr><th>{html.escape(name)}</th>{cells}</tr>")
    return (
        f"<table><tr><th>truth \\ predicted</th>{head}</tr>{''.join(body)}</table>"
        "<p>Cells count pixels; shading is the share of the truth class (row).</p>"
    )


def _class_table(
    names: tuple[str, ...], candidate: SegmentationMetrics, champion: SegmentationMetrics | None
) -> str:
    header = "<tr><th>class</th><th>IoU</th><th>F1</th><th>accuracy</th>"
    if champion is not None:
        header += "<th>champion IoU</th><th>change</th>"
    rows = [header + "</tr>"]
    for index, name in enumerate(names):
        cells = [
            _fmt(candidate.per_class_iou[index]),
            _fmt(candidate.per_class_f1[index]),
            _fmt(candidate.per_class_accuracy[index]),
        ]
        if champion is not None:
            old = champion.per_class_iou[index]
            cells += [_fmt(old), _fmt(candidate.per_class_iou[index] - old)]
        row = "".join(f"<td>{c}</td>" for c in cells)
        rows.append(f"<tr><th>{html.escape(name)}</th>{row}</tr>")
    return f"<table>{''.join(rows)}</table>"


def _summary_table(candidate: SegmentationMetrics, champion: SegmentationMetrics | None) -> str:
    keys = ("mean_iou", "frequency_weighted_iou", "pixel_accuracy", "mean_class_accuracy")
    keys += ("mean_f1",)
    header = "<tr><th>metric</th><th>candidate</th>"
    header += "<th>champion</th></tr>" if champion is not None else "</tr>"
    rows = [header]
    for key in keys:
        cells = f"<td>{_fmt(getattr(candidate, key))}</td>"
        if champion is not None:
            cells += f"<td>{_fmt(getattr(champion, key))}</td>"
        rows.append(f"<tr><th>{key}</th>{cells}</tr>")
    return f"<table>{''.join(rows)}</table>"


def _drift_section(drift: DataDrift | None) -> str:
    """This data against the champion's training data: class shares, sizes, reject rate."""
    if drift is None:
        return "<p>No champion: nothing to compare the data with.</p>"
    if not drift.available:
        return f"<p>Not measured: {html.escape(drift.reason)}</p>"
    summary = (
        f"<p>Largest class share shift: <b>{drift.class_shift:.4f}</b> "
        f"({html.escape(drift.shifted_class)}); total variation distance of the class "
        f"distributions {drift.class_tv:.4f}, of the image sizes {drift.image_size_tv:.4f}; "
        f"reject rate {drift.reject_rate:.2%} (champion's data {drift.champion_reject_rate:.2%})."
        "</p>"
    )
    rows = ["<tr><th>class</th><th>share</th><th>champion's data</th><th>change</th></tr>"]
    for name, new, old in zip(
        drift.class_names, drift.class_share, drift.champion_class_share, strict=True
    ):
        rows.append(
            f"<tr><th>{html.escape(name)}</th><td>{new:.4f}</td><td>{old:.4f}</td>"
            f"<td>{new - old:+.4f}</td></tr>"
        )
    sizes = ["<tr><th>image size</th><th>share</th><th>champion's data</th></tr>"]
    keys = sorted(
        drift.image_size_share.keys() | drift.champion_image_size_share.keys(),
        key=lambda k: (
            -max(drift.image_size_share.get(k, 0), drift.champion_image_size_share.get(k, 0))
        ),
    )
    for key in keys[:10]:
        sizes.append(
            f"<tr><th>{html.escape(key)}</th><td>{drift.image_size_share.get(key, 0):.4f}</td>"
            f"<td>{drift.champion_image_size_share.get(key, 0):.4f}</td></tr>"
        )
    return f"{summary}<table>{''.join(rows)}</table><table>{''.join(sizes)}</table>"


def _sample_figures(samples: list[Sample], num_classes: int, ignore_label: int) -> str:
    figures = []
    for sample in samples:
        truth = np.where(sample.truth == ignore_label, 0, sample.truth)
        panels = (
            ("image", sample.image),
            ("truth", blend(sample.image, truth, num_classes)),
            ("prediction", blend(sample.image, sample.prediction, num_classes)),
            ("prediction mask", colorize(sample.prediction, num_classes)),
        )
        images = "".join(
            f'<img alt="{label}" title="{label}" src="{_data_uri(a)}">' for label, a in panels
        )
        caption = (
            f"{html.escape(sample.score.source_id)}: mean IoU {_fmt(sample.score.mean_iou)}, "
            f"pixel accuracy {_fmt(sample.score.pixel_accuracy)}"
        )
        figures.append(f"<figure>{images}<figcaption>{caption}</figcaption></figure>")
    return "<br>".join(figures) or "<p>none</p>"


def _legend(names: tuple[str, ...], ignore_label: int) -> str:
    """Each class's colour in the truth, prediction and mask panels."""
    colors = palette(len(names))
    items = "".join(
        f'<span class="swatch" style="background: rgb{tuple(int(c) for c in colors[index])}">'
        f"</span>{html.escape(name)}"
        for index, name in enumerate(names)
    )
    note = f"Pixels labelled {ignore_label} (ignored) show in the truth panel as {names[0]}."
    return f'<p class="legend">{items}</p><p>{html.escape(note)}</p>'


def render_report(
    names: tuple[str, ...],
    ignore_label: int,
    candidate: ModelScores,
    candidate_metrics: SegmentationMetrics,
    champion_metrics: SegmentationMetrics | None,
    champion_version: str | None,
    passed: bool,
    reason: str,
    drift: DataDrift | None = None,
) -> str:
    """The whole report as one HTML string (images inline as PNG data URIs)."""
    verdict = "PASSED" if passed else "FAILED"
    champion_text = f"version {champion_version}" if champion_version else "none yet"
    sections = [
        "<h1>segpipe evaluation</h1>",
        f'<p class="{"pass" if passed else "fail"}"><b>Gate {verdict}</b>: '
        f"{html.escape(reason)}</p>",
        f"<p>Champion: {html.escape(champion_text)}. Images evaluated: "
        f"{len(candidate.images)}.</p>",
        "<h2>Summary</h2>",
        _summary_table(candidate_metrics, champion_metrics),
        "<h2>Per class</h2>",
        _class_table(names, candidate_metrics, champion_metrics),
        "<h2>Data against the champion's training data</h2>",
        _drift_section(drift),
        "<h2>Confusion matrix (candidate)</h2>",
        _heat_map(candidate.confusion, names),
        "<h2>Best images</h2><p>image | truth | prediction | predicted classes</p>",
        _legend(names, ignore_label),
        _sample_figures(candidate.best, len(names), ignore_label),
        "<h2>Worst images</h2>",
        _sample_figures(candidate.worst, len(names), ignore_label),
    ]
    return (
        '<!DOCTYPE html><html><head><meta charset="utf-8"><title>segpipe evaluation</title>'
        f"<style>{STYLE}</style></head><body>{''.join(sections)}</body></html>"
    )
