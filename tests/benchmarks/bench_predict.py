"""`segpipe predict` throughput on CamVid's test images, and agreement with float32.

Run: .venv/bin/python tests/benchmarks/bench_predict.py --workdir DIR
  DIR holds a finished `segpipe run --preset camvid` (make bench-camvid's build/bench/camvid-run).
Times predict on the 233 test images at 360x480 with the champion's export, one image at a
time (`--batch-size 1`), batched (default 4) and without its test-time augmentation
(`--no-tta`), and the same export rebuilt in float32 from its layer weights: the share of
pixels whose class the bfloat16 model gives as float32 does.

Or: .venv/bin/python tests/benchmarks/bench_predict.py --untrained N
  What the preset's test-time augmentation costs, without a finished run: the preset's model
  with random weights, exported with its TTA, times predict on the first N test images with
  it and with `--no-tta` (the weights change the masks, not the time).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
CAMVID_TEST = REPO.parent / "shared" / "data" / "camvid" / "test"


def newest_export(workdir: Path) -> tuple[Path, dict, dict]:
    """The newest export under workdir/exports, its train run's params and tags."""
    from mlflow.tracking import MlflowClient

    exports = sorted((workdir / "exports").glob("*/*/_SUCCESS"), key=lambda p: p.stat().st_mtime)
    folder = exports[-1].parent
    client = MlflowClient(f"sqlite:///{(workdir / 'mlflow.db').resolve()}")
    name, version = folder.parent.name, folder.name
    run = client.get_run(client.get_model_version(name, version).run_id)
    return folder, run.data.params, run.data.tags


def train_config(params: dict):
    """The TrainConfig a train run logged as its params."""
    from components.common.settings.config import TrainConfig

    fields = TrainConfig.__dataclass_fields__
    kinds = {name: type(field.default) for name, field in fields.items()}
    values = {
        k: (v == "True") if kinds[k] is bool else kinds[k](v)
        for k, v in params.items()
        if k in fields
    }
    return TrainConfig(**values)


def rebuilt_export(
    folder: Path,
    params: dict,
    target: Path,
    precision: str,
    flip_tta: bool | None = None,
    scales: tuple[float, ...] | None = None,
) -> Path:
    """The same weights in a model of `precision`, exported the same way (with `flip_tta` and
    test-time `scales` where given, else as the original was)."""
    import keras

    from components.common.data.dataset import DatasetInfo
    from components.common.saved_model import read_model_info
    from components.train.export import export_model
    from components.train.model import any_size_model, build_model
    from components.train.warm_start import LAYER_WEIGHTS_FILE, copy_matching_weights

    info = read_model_info(str(folder))
    keras.mixed_precision.set_global_policy(precision)
    size = (info["image_height"], info["image_width"])
    config = train_config(params)
    model = build_model(config, info["num_classes"], *size)
    _, left = copy_matching_weights(model, str(folder / LAYER_WEIGHTS_FILE))
    assert not left, f"weights not copied: {left}"
    scales = tuple(info.get("tta_scales", [1.0])) if scales is None else scales
    if scales != (1.0,):
        model = any_size_model(model, config, info["num_classes"])
    dataset = DatasetInfo(
        info["num_classes"], tuple(info["class_names"]), 0, 0, 255, info["grayscale"]
    )
    tta = info.get("flip_tta", False) if flip_tta is None else flip_tta
    export_model(model, str(target), dataset, tta, size, scales)
    return target


def _timed_predict(
    model: Path,
    output: Path,
    batch_size: int,
    predict=None,
    inputs: Path = CAMVID_TEST,
    **options,
) -> float:
    """Images per second of `predict` (the current one by default) over `inputs`."""
    if predict is None:
        from pipelines.predict import predict
    extra = {"batch_size": batch_size} if batch_size else {}
    started = time.perf_counter()
    result = predict(str(model), str(inputs), str(output), **extra, **options)
    assert not result.skipped and len(result.written) == len(list(inputs.glob("*.png")))
    return len(result.written) / (time.perf_counter() - started)


def untrained_preset_export(target: Path) -> Path:
    """The camvid preset's model with random weights, exported with the preset's TTA."""
    from components.common.data.dataset import DatasetInfo
    from components.common.settings.config import TrainConfig
    from components.train.export import export_model
    from components.train.model import any_size_model, build_model
    from pipelines.presets import PRESETS

    preset = PRESETS["camvid"]
    config = TrainConfig(
        **{k: v for k, v in preset.items() if k in TrainConfig.__dataclass_fields__}
    )
    size = (int(preset["input_height"]), int(preset["input_width"]))
    classes = int(preset["num_classes"])
    model = any_size_model(build_model(config, classes, *size), config, classes)
    names = tuple(str(preset["class_names"]).split(","))
    info = DatasetInfo(classes, names, *size, 255, False)
    export_model(model, str(target), info, config.flip_tta, size, config.tta_scale_list())
    return target


def tta_cost(count: int) -> dict[str, float]:
    """Predict's images/s on the first `count` test images with the preset's TTA and without."""
    import shutil

    with tempfile.TemporaryDirectory() as root:
        out = Path(root)
        inputs = out / "inputs"
        inputs.mkdir()
        for image in sorted(CAMVID_TEST.glob("*.png"))[:count]:
            shutil.copy(image, inputs)
        folder = untrained_preset_export(out / "export")
        return {
            "batch 4, preset TTA": _timed_predict(folder, out / "tta", 4, inputs=inputs),
            "batch 4, --no-tta": _timed_predict(folder, out / "once", 4, inputs=inputs, tta=False),
        }


def _predict_at(commit: str, root: Path):
    """`predict` as pipelines/predict.py was at `commit` (the code before a change)."""
    import importlib.util
    import subprocess

    source = subprocess.run(
        ["git", "show", f"{commit}:pipelines/predict.py"],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = root / f"predict_{commit}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(f"predict_{commit}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module.predict


def _agreement(first: Path, second: Path) -> float:
    from PIL import Image

    same = total = 0
    for mask in sorted(first.glob("*_mask.png")):
        a = np.asarray(Image.open(mask))
        b = np.asarray(Image.open(second / mask.name))
        same += int((a == b).sum())
        total += a.size
    return same / total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workdir", default=str(REPO / "build" / "bench" / "camvid-run"))
    parser.add_argument(
        "--baseline", default="ef33e52", help="a commit whose predict to time too (one by one)"
    )
    parser.add_argument(
        "--untrained",
        type=int,
        default=0,
        metavar="N",
        help="time the preset's TTA against --no-tta on N test images, with random weights",
    )
    args = parser.parse_args()
    if args.untrained:
        rates = tta_cost(args.untrained)
        print(f"predict, {args.untrained} CamVid test images at 360x480, images/s: {rates}")
        return 0
    folder, params, _ = newest_export(Path(args.workdir))
    with tempfile.TemporaryDirectory() as root:
        out = Path(root)
        old = _predict_at(args.baseline, out)
        rates = {f"{args.baseline}": _timed_predict(folder, out / "old", 0, old)}
        rates.update({f"batch {n}": _timed_predict(folder, out / f"b{n}", n) for n in (1, 4)})
        rates["batch 4, --no-tta"] = _timed_predict(folder, out / "once", 4, tta=False)
        float32 = rebuilt_export(folder, params, out / "float32", "float32")
        rates["float32, batch 4"] = _timed_predict(float32, out / "f32", 4)
        agreement = _agreement(out / "b4", out / "f32")
        batches_agree = _agreement(out / "b1", out / "b4")
        old_agree = _agreement(out / "old", out / "b4")
        once_agree = _agreement(out / "once", out / "b4")
    print(f"export {folder} ({params.get('precision')} requested)")
    print(f"predict, 233 CamVid test images at 360x480, images/s: {json.dumps(rates)}")
    print(
        f"pixels equal: float32 {agreement:.4%}, batch 1 {batches_agree:.4%}, "
        f"{args.baseline} {old_agree:.4%}, --no-tta {once_agree:.4%} (each against batch 4)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
