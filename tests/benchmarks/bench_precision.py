"""Does bfloat16 hold quality? The preset trained for a few epochs per precision, same seed.

Run: .venv/bin/python tests/benchmarks/bench_precision.py --epochs 5
On CamVid (../shared/data/camvid, shards cached in build/bench/ as bench_train.py makes them):
the val mean IoU of every epoch, and the epoch times, in float32 and in mixed_bfloat16.
Val only: the test split is never read here.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile

from bench_train import CAMVID, _shards


def val_curve(preset: dict, epochs: int, precision: str) -> tuple[list[float], list[float]]:
    """(val mean IoU per epoch, seconds per epoch) of `epochs` epochs at `precision`."""
    from mlflow.tracking import MlflowClient

    from components.common.settings.config import RunContext, TrainConfig
    from components.train.trainer import train

    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    settings = {k: v for k, v in preset.items() if k in fields}
    config = TrainConfig(**{**settings, "epochs": epochs, "precision": precision})
    shards = _shards(preset, CAMVID)
    with tempfile.TemporaryDirectory() as root:
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{root}/mlflow.db"
        run_id = train(
            str(shards), f"{root}/model", config, RunContext("bench", f"precision-{precision}")
        )
        client = MlflowClient()
        val = client.get_metric_history(run_id, "val_mean_iou")
        seconds = client.get_metric_history(run_id, "time/epoch_s")
    by_step = lambda history: [m.value for m in sorted(history, key=lambda m: m.step)]  # noqa: E731
    return by_step(val), by_step(seconds)


def main() -> int:
    from pipelines.presets import preset_parameters

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--preset", default="camvid")
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()
    if not CAMVID.is_dir():
        raise SystemExit(f"{CAMVID} is absent")
    preset = preset_parameters(args.preset)
    curves = {p: val_curve(preset, args.epochs, p) for p in ("mixed_bfloat16", "float32")}
    for precision, (val, seconds) in curves.items():
        print(f"{precision:<15} val mean IoU {[round(v, 4) for v in val]}")
        print(f"{'':<15} epoch seconds {[round(s, 1) for s in seconds]}")
    gaps = [b - f for b, f in zip(curves["mixed_bfloat16"][0], curves["float32"][0], strict=True)]
    print(f"bf16 - float32 val mean IoU per epoch: {[round(g, 4) for g in gaps]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
