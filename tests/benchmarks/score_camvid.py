"""Score a finished CamVid run independently: `segpipe predict` on a split's images, then
mean IoU against CamVid's own label PNGs at the full 360x480 (void, 11, ignored).

Run: .venv/bin/python tests/benchmarks/score_camvid.py --workdir DIR --split val [--flip-tta]
     [--tta-scales 0.75,1,1.25]
  DIR holds a finished `segpipe run --preset camvid` (its newest export is scored).
  --flip-tta    re-exports the same weights with horizontal-flip test-time augmentation
                first (in the run's precision), to measure what it adds;
  --tta-scales  likewise with those test-time scales of the input size.
Choose settings on val; score test once, for the record.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
CAMVID = REPO.parent / "shared" / "data" / "camvid"
VOID = 11


def confusion(predicted_dir: Path, split: str, classes: int) -> np.ndarray:
    """classes x classes pixel counts (row: label, column: prediction), void left out."""
    from PIL import Image

    counts = np.zeros((classes, classes), np.int64)
    labels = sorted((CAMVID / f"{split}annot").glob("*.png"))
    assert labels, f"no labels under {CAMVID / f'{split}annot'}"
    for label_path in labels:
        label = np.asarray(Image.open(label_path)).astype(np.int64)
        mask = np.asarray(Image.open(predicted_dir / f"{label_path.stem}_mask.png"))
        assert mask.shape == label.shape, f"{label_path.name}: {mask.shape} vs {label.shape}"
        keep = label != VOID
        counts += np.bincount(
            label[keep] * classes + mask[keep].astype(np.int64), minlength=classes * classes
        ).reshape(classes, classes)
    return counts


def scores(counts: np.ndarray, names: list[str]) -> dict:
    true_positive = np.diag(counts).astype(float)
    union = counts.sum(0) + counts.sum(1) - true_positive
    iou = true_positive / np.maximum(union, 1)
    return {
        "mean_iou": float(iou.mean()),
        "pixel_accuracy": float(true_positive.sum() / counts.sum()),
        "mean_class_accuracy": float((true_positive / np.maximum(counts.sum(1), 1)).mean()),
        "iou": {name: round(float(value), 4) for name, value in zip(names, iou, strict=True)},
    }


def main() -> int:
    from components.common.saved_model import read_model_info
    from pipelines.predict import predict
    from tests.benchmarks.bench_predict import newest_export, rebuilt_export

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--split", choices=("val", "test"), required=True)
    parser.add_argument("--flip-tta", action="store_true")
    parser.add_argument("--tta-scales", default="")
    args = parser.parse_args()
    folder, params, tags = newest_export(Path(args.workdir))
    scales = tuple(float(s) for s in args.tta_scales.split(",")) if args.tta_scales else None
    with tempfile.TemporaryDirectory() as scratch:
        model = folder
        if args.flip_tta or scales:
            precision = tags.get("segpipe.precision", "float32")
            model = rebuilt_export(
                folder, params, Path(scratch) / "tta", precision, args.flip_tta or None, scales
            )
        predicted = Path(scratch) / "masks"
        result = predict(str(model), str(CAMVID / args.split), str(predicted))
        assert not result.skipped, result.skipped
        names = read_model_info(str(folder))["class_names"]
        figures = scores(confusion(predicted, args.split, len(names)), names)
    tta = {"flip_tta": args.flip_tta, "tta_scales": args.tta_scales}
    figures |= {"split": args.split, **tta, "export": str(folder)}
    print(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
