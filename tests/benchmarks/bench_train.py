"""Training throughput on this CPU: input pipeline vs train step, float32 vs mixed_bfloat16.

Run: .venv/bin/python tests/benchmarks/bench_train.py [--size 256 --batch 8 --steps 12]
On the synthetic sample data preprocessed to size x size: (1) the tf.data training input
(decode, scale/crop, flip, class weights) alone; (2) the U-Net train step alone, fed one
batch from memory; (3) a real epoch slice fed by the input pipeline, whose slowdown over (2)
is the input-bound fraction. (2) runs in float32 and mixed_bfloat16. Same batch, same size.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _preprocess(root: str, size: int) -> str:
    from components.common.config import PreprocessConfig
    from components.common.sample_data import write_sample_data
    from components.preprocess.pipeline import run_preprocess

    write_sample_data(f"{root}/raw", count=160, size=size)
    config = PreprocessConfig(
        image_height=size, image_width=size, num_shards=4, direct_running_mode="in_memory"
    )
    run_preprocess(f"{root}/raw", f"{root}/shards", config)
    return f"{root}/shards"


def _input(shards: str, batch: int):
    from components.common.dataset import read_dataset_info
    from components.common.storage import read_json
    from components.train.data import Augmentation, make_dataset

    info = read_dataset_info(shards)
    weights = read_json(f"{shards}/stats.json")["class_weights"]
    return make_dataset(
        info.shard_pattern(shards, "train"),
        batch,
        True,
        augmentation=Augmentation(scale_min=0.75, scale_max=1.5),
        class_weights=weights,
        image_size=(info.image_height, info.image_width),
    ).repeat()


def _images_per_second(iterator, batch: int, steps: int, step=lambda item: None) -> float:
    step(next(iterator))  # warm-up: tracing, first reads
    start = time.perf_counter()
    for _ in range(steps):
        step(next(iterator))
    return steps * batch / (time.perf_counter() - start)


def _train_step(policy: str, size: int, batch: int):
    """A compiled U-Net train step under `policy`."""
    import keras

    from components.train.losses import CrossEntropyDice
    from components.train.model import build_unet

    keras.mixed_precision.set_global_policy(policy)
    model = build_unet(4, size, size, base_width=16, depth=4)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=CrossEntropyDice(4, 255, 0.0))
    keras.mixed_precision.set_global_policy("float32")
    return lambda item: model.train_on_batch(*item)  # (images, masks, pixel weights)


def main() -> int:
    import tensorflow as tf

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=12)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root:
        shards = _preprocess(root, args.size)
        data = _input(shards, args.batch)
        input_rate = _images_per_second(iter(data), args.batch, args.steps * 4)
        one_batch = next(iter(data))
        in_memory = tf.data.Dataset.from_tensors(one_batch).repeat()
        rates = {}
        for policy in ("float32", "mixed_bfloat16"):
            step = _train_step(policy, args.size, args.batch)
            rates[policy] = _images_per_second(iter(in_memory), args.batch, args.steps, step)
        fed = _images_per_second(
            iter(data), args.batch, args.steps, _train_step("float32", args.size, args.batch)
        )
    step_rate = rates["float32"]
    print(f"U-Net w16 d4, {args.size}x{args.size}, batch {args.batch}, {os.cpu_count()} cores")
    print(f"input pipeline alone:        {input_rate:7.1f} img/s")
    print(f"train step alone, float32:   {step_rate:7.1f} img/s")
    print(f"train step, mixed_bfloat16:  {rates['mixed_bfloat16']:7.1f} img/s")
    print(f"train fed by the input:      {fed:7.1f} img/s")
    print(f"input / step ratio: {input_rate / step_rate:.2f} (target >= 2)")
    print(f"bf16 / fp32 step ratio: {rates['mixed_bfloat16'] / step_rate:.2f}")
    print(f"input-bound fraction of an epoch: {max(0.0, 1 - fed / step_rate):.1%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
