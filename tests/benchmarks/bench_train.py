"""Where training time goes on this machine, against what the machine can do.

Run: make bench-train  (or .venv/bin/python tests/benchmarks/bench_train.py --epochs 2)

1. Peak: a 3x3 convolution and a matmul, float32 and bfloat16, in GFLOP/s (best of several).
2. The train step of a preset's U-Net (camvid: width 16, depth 4, 240x320, batch 8) on one
   batch held in memory, per precision, with and without XLA: images/s, GFLOP/s from the
   model's counted FLOPs (forward x 3), and its share of the bf16 convolution peak.
3. Real epochs of `train()` on the preset's data (../shared/data/camvid, preprocessed once
   into build/bench/; the sample data where it is absent): per epoch, the train steps, the
   input wait (their time beyond the step alone), validation, and the epoch-end callbacks
   (metrics, checkpoints), from the times the trainer logs (`time/*` metrics).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[2]
CAMVID = REPO.parent / "shared" / "data" / "camvid"
CACHE = REPO / "build" / "bench"


def _best_rate(run, flops: float, repeats: int = 5) -> float:
    """GFLOP/s of `run()` (which does `flops`), best of `repeats` after a warm-up."""
    run()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return flops / best / 1e9


def peaks() -> dict[str, float]:
    """Convolution and matmul GFLOP/s in float32 and bfloat16."""
    import tensorflow as tf

    rates = {}
    for dtype in (tf.float32, tf.bfloat16):
        images = tf.cast(tf.random.normal([8, 96, 128, 64]), dtype)
        kernel = tf.cast(tf.random.normal([3, 3, 64, 64]), dtype)
        conv = tf.function(tf.nn.conv2d)
        conv_flops = 2 * 8 * 96 * 128 * 64 * 64 * 9
        rates[f"conv {dtype.name}"] = _best_rate(
            lambda c=conv, x=images, k=kernel: c(x, k, 1, "SAME").numpy(), conv_flops
        )
        square = tf.cast(tf.random.normal([2048, 2048]), dtype)
        matmul = tf.function(tf.matmul)
        rates[f"matmul {dtype.name}"] = _best_rate(
            lambda m=matmul, a=square: m(a, a).numpy(), 2 * 2048**3
        )
    return rates


def forward_flops(model) -> float:
    """Multiply-adds x 2 of the model's convolutions (the rest is a few percent)."""
    import keras

    total = 0.0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2DTranspose):
            _, h, w, c_in = layer.input.shape
            k = layer.kernel_size[0] * layer.kernel_size[1]
            total += 2 * h * w * c_in * k * layer.filters
        elif isinstance(layer, keras.layers.Conv2D):
            _, h, w, c_out = layer.output.shape
            k = layer.kernel_size[0] * layer.kernel_size[1]
            total += 2 * h * w * c_out * k * layer.input.shape[-1]
    return total


def train_steps(config, num_classes: int, steps: int) -> list[dict]:
    """The train step on one in-memory batch, per precision and XLA setting."""
    import keras
    import numpy as np
    import tensorflow as tf

    from components.train.losses import CrossEntropyDice
    from components.train.model import build_model

    height, width, batch = config.input_height, config.input_width, config.batch_size
    rng = np.random.default_rng(0)
    images = tf.constant(rng.uniform(0, 255, (batch, height, width, 3)), tf.float32)
    masks = tf.constant(rng.integers(0, num_classes, (batch, height, width, 1)), tf.int32)
    weights = tf.ones((batch, height, width), tf.float32)
    results = []
    for policy in ("float32", "mixed_bfloat16"):
        for jit in (False, True):
            keras.mixed_precision.set_global_policy(policy)
            model = build_model(config, num_classes, height, width)
            model.compile(
                optimizer=keras.optimizers.Adam(1e-3),
                loss=CrossEntropyDice(num_classes, 255, config.dice_weight),
                jit_compile=jit,
            )
            keras.mixed_precision.set_global_policy("float32")
            flops = 3 * forward_flops(model) * batch
            model.train_on_batch(images, masks, weights)  # trace and compile
            model.train_on_batch(images, masks, weights)
            start = time.perf_counter()
            for _ in range(steps):
                model.train_on_batch(images, masks, weights)
            step_s = (time.perf_counter() - start) / steps
            results.append(
                {"policy": policy, "xla": jit, "step_s": step_s, "gflops": flops / step_s / 1e9}
            )
    return results


def _shards(preset: dict, data: Path) -> Path:
    """The preset's shards of `data`, made once under build/bench/."""
    from components.common.settings.config import PreprocessConfig
    from components.preprocess.pipeline import run_preprocess

    fields = {f.name for f in dataclasses.fields(PreprocessConfig)}
    config = PreprocessConfig(**{k: v for k, v in preset.items() if k in fields})
    target = CACHE / f"{data.name}-{config.image_height}x{config.image_width}"
    if not (target / "dataset.json").exists():
        run_preprocess(str(data), str(target), config)
    return target


def epochs(preset: dict, data: Path, count: int) -> tuple[list[dict[str, float]], str]:
    """`count` real epochs of train() on the preset: the per-epoch times it logged, and the
    precision it chose."""
    from mlflow.tracking import MlflowClient

    from components.common.settings.config import RunContext, TrainConfig
    from components.train.trainer import train

    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    config = TrainConfig(**{**{k: v for k, v in preset.items() if k in fields}, "epochs": count})
    shards = _shards(preset, data)
    with tempfile.TemporaryDirectory() as root:
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{root}/mlflow.db"
        run_id = train(
            str(shards),
            f"{root}/model",
            config,
            RunContext("bench", "bench"),
            checkpoint_dir=f"{root}/ckpt",
        )
        client = MlflowClient()
        keys = ("epoch_s", "train_s", "val_s", "callbacks_s")
        history = {k: client.get_metric_history(run_id, f"time/{k}") for k in keys}
        precision = client.get_run(run_id).data.tags["segpipe.precision"]
    rows = zip(*history.values(), strict=True)
    return [{k: m.value for k, m in zip(keys, row, strict=True)} for row in rows], precision


def main() -> int:
    import json

    from components.common.storage import read_json
    from components.train.trainer import train_steps as steps_per_epoch
    from components.train.trainer import training_splits
    from pipelines.presets import preset_parameters

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--preset", default="camvid")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--skip-epochs", action="store_true", help="parts 1 and 2 only")
    args = parser.parse_args()
    preset = preset_parameters(args.preset)
    from components.common.settings.config import TrainConfig

    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    config = TrainConfig(**{k: v for k, v in preset.items() if k in fields})
    num_classes = int(preset.get("num_classes", 4))

    peak = peaks()
    print(f"{os.cpu_count()} cores; peak GFLOP/s (best of 5):")
    for name, rate in peak.items():
        print(f"  {name:<16} {rate:8.1f}")
    steps = train_steps(config, num_classes, args.steps)
    shape = f"{config.input_height}x{config.input_width}, batch {config.batch_size}"
    print(f"train step, {config.architecture} w{config.unet_width} d{config.unet_depth}, {shape}:")
    for row in steps:
        share = row["gflops"] / peak["conv bfloat16"]
        print(
            f"  {row['policy']:<15} xla={str(row['xla']):<5} {row['step_s'] * 1000:7.1f} ms/step "
            f"{config.batch_size / row['step_s']:6.1f} img/s {row['gflops']:7.1f} GFLOP/s "
            f"({share:.0%} of bf16 conv peak)"
        )
    if args.skip_epochs:
        return 0
    data = CAMVID if args.preset == "camvid" and CAMVID.is_dir() else None
    if data is None:
        raise SystemExit(f"{CAMVID} is absent: run with --skip-epochs")
    times, precision = epochs(preset, data, args.epochs)
    stats_path = str(_shards(preset, data) / "stats.json")
    stats = read_json(stats_path)
    splits = training_splits(config)  # train, and val too where the preset refits on both
    examples = sum(stats["splits"][split]["examples"] for split in splits)
    batches = steps_per_epoch(stats, config.batch_size, False, stats_path, splits)
    alone = {(r["policy"], r["xla"]): r["step_s"] for r in steps}
    step_s = alone[(precision, config.jit_compile)]
    trained_on = " + ".join(splits)
    print(f"epochs of train() ({examples} {trained_on} examples, {batches} steps, {precision}):")
    for number, epoch in enumerate(times, start=1):
        compute = min(epoch["train_s"], batches * step_s)
        wait = epoch["train_s"] - compute
        other = epoch["val_s"] + epoch["callbacks_s"]
        share = (wait + other) / epoch["epoch_s"]
        print(
            f"  epoch {number}: {epoch['epoch_s']:6.1f} s = steps {compute:5.1f} + input wait "
            f"{wait:5.1f} + validation {epoch['val_s']:5.1f} + callbacks "
            f"{epoch['callbacks_s']:4.1f}  (not a train step: {share:.0%})"
        )
    print(json.dumps({"peak": peak, "steps": steps, "epochs": times}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
