"""CamVid from ../shared/data via its list files: SegNet splits, void ignored, exact stats."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

CAMVID = Path(__file__).resolve().parents[2] / "shared" / "data" / "camvid"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CAMVID.is_dir(), reason=f"{CAMVID} is absent"),
]


def test_camvid_list_files_give_the_segnet_splits_and_exact_class_counts(mlflow_store, tmp_path):
    from components.preprocess.__main__ import main

    output = tmp_path / "camvid"
    args = ["--data", str(CAMVID), "--output", str(output), "--layout", "list-files"]
    args += ["--list-files", "train.txt,val.txt,test.txt", "--strip-prefix", "/SegNet/CamVid/"]
    args += ["--num-classes", "11", "--ignore-values", "11", "--image-height", "360"]
    args += ["--image-width", "480", "--num-shards", "2"]
    assert main(args) == 0
    stats = json.loads((output / "stats.json").read_text())

    assert {s: stats["splits"][s]["examples"] for s in ("train", "val", "test")} == {
        "train": 367,
        "val": 101,
        "test": 233,
    }
    assert stats["rejected"] == 0
    for split, folder in (("train", "trainannot"), ("val", "valannot"), ("test", "testannot")):
        direct = np.zeros(12, np.int64)
        for mask in (CAMVID / folder).glob("*.png"):
            direct += np.bincount(np.asarray(Image.open(mask)).ravel(), minlength=12)[:12]
        assert stats["splits"][split]["class_pixels"] == direct[:11].tolist(), split
