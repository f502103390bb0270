"""Train a segmentation model on the shards, track it in MLflow, export a SavedModel."""

from __future__ import annotations

import dataclasses
import logging
import math

import keras
import mlflow

from components.common import storage
from components.common.config import TrainConfig
from components.common.dataset import read_dataset_info
from components.common.tracking import step_run
from components.train.data import make_dataset
from components.train.export import export_model
from components.train.model import build_unet

log = logging.getLogger(__name__)


class MlflowEpochLogger(keras.callbacks.Callback):
    """Logs every epoch's Keras metrics to the active MLflow run; stops on a NaN loss."""

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        if not math.isfinite(logs.get("loss", 0.0)):
            raise FloatingPointError(f"training loss became {logs['loss']} at epoch {epoch + 1}")
        mlflow.log_metrics({k: float(v) for k, v in logs.items()}, step=epoch + 1)


def train(
    dataset_dir: str,
    model_dir: str,
    config: TrainConfig,
    experiment: str = "segpipe",
    pipeline_run_id: str = "manual",
) -> str:
    """Train on `dataset_dir`'s train split, validate on val, export to `model_dir`.

    Returns the MLflow run id that holds the logged model.
    """
    info = read_dataset_info(dataset_dir)
    keras.utils.set_random_seed(config.seed)
    with step_run("train", experiment, pipeline_run_id) as run:
        mlflow.log_params(dataclasses.asdict(config))
        mlflow.log_params({f"data.{k}": v for k, v in dataclasses.asdict(info).items()})
        stats = storage.read_json(storage.join(dataset_dir, "stats.json"))
        mlflow.log_dict(stats, "dataset/stats.json")  # lineage: what this model saw
        mlflow.log_dict(dataclasses.asdict(info), "dataset/dataset.json")
        lineage_path = storage.join(dataset_dir, "lineage.json")
        if storage.exists(lineage_path):
            lineage = storage.read_json(lineage_path)
            mlflow.set_tags({f"segpipe.{k}": v for k, v in lineage.items()})
        train_data = make_dataset(
            info.shard_pattern(dataset_dir, "train"), config.batch_size, True, config.seed
        )
        val_data = None
        if stats["splits"]["val"]["examples"]:
            val_data = make_dataset(
                info.shard_pattern(dataset_dir, "val"), config.batch_size, False
            )
        else:
            log.warning("train: the val split is empty; training without validation")
        model = build_unet(
            info.num_classes,
            info.image_height,
            info.image_width,
            config.unet_width,
            config.unet_depth,
        )
        steps_per_epoch = max(
            1, math.ceil(stats["splits"]["train"]["examples"] / config.batch_size)
        )
        schedule = keras.optimizers.schedules.CosineDecay(
            config.learning_rate, decay_steps=steps_per_epoch * config.epochs, alpha=0.05
        )
        model.compile(
            optimizer=keras.optimizers.Adam(schedule),
            loss=keras.losses.SparseCategoricalCrossentropy(
                from_logits=True, ignore_class=info.ignore_label
            ),
            metrics=[
                keras.metrics.MeanIoU(
                    info.num_classes,
                    name="mean_iou",
                    ignore_class=info.ignore_label,
                    sparse_y_pred=False,
                )
            ],
        )
        model.fit(
            train_data,
            validation_data=val_data,
            epochs=config.epochs,
            callbacks=[MlflowEpochLogger()],
            verbose=2,
        )
        export_model(model, model_dir, info)
        mlflow.log_artifacts(model_dir, "model")
        log.info("train: exported to %s, MLflow run %s", model_dir, run.info.run_id)
        return run.info.run_id
