"""CamVid results table: one `segpipe run --preset camvid`, scored on the test split, beside the
published results on the same split, into docs/results-camvid.md and the run's MLflow parent.

Run: make bench-camvid   (about 50 minutes on 2 Zen 4 cores; needs ../shared/data/camvid)
     .venv/bin/python tests/benchmarks/bench_camvid.py --workdir DIR --no-run
       (the table of the latest run already in DIR, without training again)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CAMVID = REPO.parent / "shared" / "data" / "camvid"
OUTPUT = REPO / "docs" / "results-camvid.md"
KEPT_FROM = "## Ablation"  # the page from here on is written by hand
# Test mean IoU (%) on SegNet's CamVid split, 11 classes, from each paper.
PUBLISHED = {
    "SegNet-Basic (Badrinarayanan et al., TPAMI 2017)": 47.7,
    "ENet (Paszke et al., 2016)": 51.3,
    "FC-DenseNet56 (Jegou et al., 2017)": 58.9,
    "SegNet, ImageNet VGG16 (Badrinarayanan et al., TPAMI 2017)": 60.1,
    "FC-DenseNet103 (Jegou et al., 2017)": 66.9,
}


def _latest_parent(uri: str):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("segpipe")
    (parent,) = client.search_runs(
        [experiment.experiment_id],
        "tags.`segpipe.step` = 'pipeline'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    train = client.get_run(parent.data.tags["segpipe.train_run_id"])
    return client, parent, train


def render(parent, train, preset: str, wall_s: float | None, best_val: float | None) -> str:
    """The Markdown page: overall, per class, the published results, how it was made."""
    metrics = parent.data.metrics
    classes = sorted(
        (key.removeprefix("iou/"), value)
        for key, value in metrics.items()
        if key.startswith("iou/")
    )
    params = train.data.params
    took = wall_s if wall_s is not None else (parent.info.end_time - parent.info.start_time) / 1000
    val_text = f"{best_val:.3f}" if best_val is not None else "- (refit on train + val)"
    lines = [
        "# CamVid results",
        "",
        f"`segpipe run --preset {preset}` on SegNet's CamVid split (367 train, 101 val, 233 test;",
        "11 classes, void ignored), scored once on the test split at the full 360x480. Made by",
        "`make bench-camvid` (`tests/benchmarks/bench_camvid.py`). The test split picks no",
        "setting, checkpoint or epoch count: it is scored once, for this table.",
        "",
        "| model | test mean IoU |",
        "|---|---:|",
    ]
    ours = f"**segpipe `{preset}`** ({params.get('architecture')}, this run)"
    rows = [*PUBLISHED.items(), (ours, 100 * metrics["mean_iou"])]
    for name, value in sorted(rows, key=lambda row: row[1]):
        lines.append(f"| {name} | {value:.1f} |")
    lines += [
        "",
        "| | |",
        "|---|---|",
        f"| best val mean IoU (101 val images, at the model input) | {val_text} |",
        f"| pixel accuracy | {metrics.get('pixel_accuracy', float('nan')):.3f} |",
        f"| mean class accuracy | {metrics.get('mean_class_accuracy', float('nan')):.3f} |",
        f"| wall time, whole run | {took / 60:.1f} min on {os.cpu_count()} cores |",
        f"| epochs | {params.get('epochs')} |",
        f"| precision | {train.data.tags.get('segpipe.precision')} |",
        f"| trained on | {'train + val' if params.get('train_on_val') == 'True' else 'train'} |",
        f"| flip test-time augmentation | {params.get('flip_tta')} |",
        f"| test-time scales of the model input | {params.get('tta_scales', '1')} |",
        f"| model input | {params.get('input_height')}x{params.get('input_width')} |",
        "",
        "| class | IoU |",
        "|---|---:|",
    ]
    lines += [f"| {name} | {value:.3f} |" for name, value in classes]
    lines += ["", f"MLflow run: `{parent.info.run_id}`", ""]
    return "\n".join(lines)


def _kept_sections() -> str:
    """The page's hand-written sections (from `## Ablation` on), kept across runs."""
    old = OUTPUT.read_text() if OUTPUT.is_file() else ""
    start = old.find(KEPT_FROM)
    return "\n" + old[start:] if start >= 0 else ""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--preset", default="camvid")
    parser.add_argument("--workdir", default=str(REPO / "build" / "bench" / "camvid-run"))
    parser.add_argument("--no-run", action="store_true", help="table the latest run in workdir")
    args = parser.parse_args()
    workdir = Path(args.workdir)
    wall_s = None
    if not args.no_run:
        if not CAMVID.is_dir():
            raise SystemExit(f"{CAMVID} is absent")
        workdir.mkdir(parents=True, exist_ok=True)
        command = [str(Path(sys.executable).parent / "segpipe"), "run", "--preset", args.preset]
        command += ["--data", str(CAMVID), "--workdir", str(workdir)]
        started = time.monotonic()
        subprocess.run(command, check=True)
        wall_s = time.monotonic() - started
    uri = f"sqlite:///{(workdir / 'mlflow.db').resolve()}"
    client, parent, train = _latest_parent(uri)
    val = client.get_metric_history(train.info.run_id, "val_mean_iou")
    page = render(parent, train, args.preset, wall_s, max((m.value for m in val), default=None))
    OUTPUT.write_text(page + _kept_sections())
    client.log_text(parent.info.run_id, page, "results-camvid.md")
    print(page)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
