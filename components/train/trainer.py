"""Train a segmentation model on the shards, track it in MLflow, export a SavedModel."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import logging
import math

import keras
import mlflow
import tensorflow as tf

from components.common import storage
from components.common.config import PublishConfig, TrainConfig
from components.common.dataset import read_dataset_info
from components.common.tracking import step_run
from components.train import checkpoints, distributed, hardware
from components.train.data import Augmentation, make_dataset
from components.train.export import export_model
from components.train.losses import CrossEntropyDice
from components.train.model import build_model
from components.train.optimization import make_optimizer
from components.train.warm_start import warm_start

log = logging.getLogger(__name__)


class MlflowEpochLogger(keras.callbacks.Callback):
    """Logs every epoch's Keras metrics to the active MLflow run; stops on a NaN loss."""

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        if not math.isfinite(logs.get("loss", 0.0)):
            raise FloatingPointError(f"training loss became {logs['loss']} at epoch {epoch + 1}")
        mlflow.log_metrics({k: float(v) for k, v in logs.items()}, step=epoch + 1)


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """TerminateOnNaN, but failing the task with a message instead of ending it quietly."""

    def __init__(self):
        super().__init__()
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = float((logs or {}).get("loss", 0.0))
        if not math.isfinite(loss):
            raise FloatingPointError(
                f"training loss became {loss} at epoch {self._epoch + 1}, step {batch + 1}; "
                "try a lower learning_rate, more warmup_epochs or precision=float32"
            )


@contextlib.contextmanager
def _system_metrics(enabled: bool):
    """System metrics for the run started inside, and for no other run of this process."""
    if enabled and importlib.util.find_spec("psutil") is None:
        log.warning("train: psutil is not installed; no system metrics")
        enabled = False
    if enabled:
        mlflow.enable_system_metrics_logging()
    try:
        yield
    finally:
        if enabled:
            mlflow.disable_system_metrics_logging()


def _early_stopping(patience: int) -> keras.callbacks.EarlyStopping:
    return keras.callbacks.EarlyStopping(
        monitor="val_mean_iou", mode="max", patience=patience, restore_best_weights=True
    )


def train(
    dataset_dir: str,
    model_dir: str,
    config: TrainConfig,
    experiment: str = "segpipe",
    pipeline_run_id: str = "manual",
    checkpoint_dir: str = "",
    model_name: str = PublishConfig.model_name,
    alias: str = PublishConfig.alias,
    pipeline_root: str = "",
) -> str:
    """Train on `dataset_dir`'s train split, validate on val, export to `model_dir`.

    Checkpoints go to `checkpoint_dir`, by default `<checkpoint_root>/<pipeline_run_id>/train`
    with `<pipeline_root>/checkpoints` standing in for an empty root (none when all are empty);
    a rerun finding one resumes its epochs and its MLflow run.
    `model_name@alias` is the model a warm start copies weights from.
    Returns the MLflow run id that holds the logged model.
    """
    # first, before any other TensorFlow op: several workers' collectives are set up only at
    # program start
    strategy, policy = hardware.setup(config.precision)
    info = read_dataset_info(dataset_dir)
    stats = storage.read_json(storage.join(dataset_dir, "stats.json"))
    keras.utils.set_random_seed(config.seed)
    checkpoint_dir = checkpoint_dir or checkpoints.checkpoint_dir_for(
        config.checkpoint_root, pipeline_run_id, pipeline_root
    )
    if not distributed.role(strategy).is_chief:
        _train_as_worker(
            dataset_dir, info, stats, config, strategy, checkpoint_dir, model_name, alias
        )
        return ""
    resumed_run_id = checkpoints.saved_run_id(checkpoint_dir)
    with (
        _system_metrics(config.system_metrics),
        step_run("train", experiment, pipeline_run_id, run_id=resumed_run_id) as run,
    ):
        if resumed_run_id:
            log.info("train: resuming MLflow run %s from %s", resumed_run_id, checkpoint_dir)
        else:
            _log_inputs(dataset_dir, config, info)
            if checkpoint_dir:
                checkpoints.save_run_id(checkpoint_dir, run.info.run_id)
        mlflow.set_tags(_strategy_tags(strategy, policy))
        setup = _prepare(dataset_dir, info, stats, config, strategy, model_name, alias)
        if setup.warm_start_tags:
            mlflow.set_tags(setup.warm_start_tags)
        _fit(setup, config, _callbacks(config, checkpoint_dir, strategy, setup, tracked=True))
        export_model(setup.model, model_dir, info)
        # the other workers are done with their checkpoints only once they get here
        distributed.barrier(strategy, "the end of training")
        mlflow.log_artifacts(model_dir, "model")
        checkpoints.remove(checkpoint_dir)  # only now: the model is safely exported
        log.info("train: exported to %s, MLflow run %s", model_dir, run.info.run_id)
        return run.info.run_id


def _train_as_worker(
    dataset_dir, info, stats, config: TrainConfig, strategy, checkpoint_dir, model_name, alias
) -> None:
    """A non-chief worker's part: the same training in step with the chief, no outputs."""
    worker = distributed.role(strategy)
    log.info("train: worker %d of %d; the chief tracks and exports", worker.index, worker.count)
    setup = _prepare(dataset_dir, info, stats, config, strategy, model_name, alias)
    _fit(setup, config, _callbacks(config, checkpoint_dir, strategy, setup, tracked=False))
    distributed.barrier(strategy, "the end of training")


@dataclasses.dataclass
class _Setup:
    """A compiled model and its inputs, the same on every worker."""

    model: keras.Model
    train_data: object  # endless batches
    val_data: object | None
    steps_per_epoch: int
    warm_start_tags: dict[str, object]


def _prepare(dataset_dir, info, stats, config: TrainConfig, strategy, model_name, alias) -> _Setup:
    train_data, val_data, steps_per_epoch = _datasets(dataset_dir, info, stats, config, strategy)
    warm_start_tags: dict[str, object] = {}
    with strategy.scope():
        model = build_model(config, info.num_classes, *input_size(config, info))
        # also on a resumed run: a checkpoint, if one was written, overrides it in fit
        if config.warm_start:
            copied = warm_start(model, model_name, alias)
            warm_start_tags = {f"segpipe.{k}": v for k, v in copied.items()}
        model.compile(
            optimizer=make_optimizer(config, steps_per_epoch),
            loss=CrossEntropyDice(info.num_classes, info.ignore_label, config.dice_weight),
            metrics=[
                keras.metrics.MeanIoU(
                    info.num_classes,
                    name="mean_iou",
                    ignore_class=info.ignore_label,
                    sparse_y_pred=False,
                )
            ],
            jit_compile=config.jit_compile,
        )
    return _Setup(model, train_data, val_data, steps_per_epoch, warm_start_tags)


def _fit(setup: _Setup, config: TrainConfig, callbacks) -> None:
    setup.model.fit(
        setup.train_data,
        steps_per_epoch=setup.steps_per_epoch,
        validation_data=setup.val_data,
        epochs=config.epochs,
        shuffle=False,  # the tf.data pipeline shuffles; Keras would only warn
        callbacks=callbacks,
        verbose=2,
    )


def _strategy_tags(strategy, policy: str) -> dict[str, str]:
    tags = {"segpipe.precision": policy, "segpipe.strategy": type(strategy).__name__}
    workers = distributed.role(strategy).count
    if workers > 1:
        tags["segpipe.workers"] = str(workers)
    return tags


def input_size(config: TrainConfig, info) -> tuple[int, int]:
    """The model's input (height, width): the configured one, else the data set's."""
    return (config.input_height or info.image_height, config.input_width or info.image_width)


def _datasets(dataset_dir: str, info, stats: dict, config: TrainConfig, strategy):
    """(endless train batches, val batches or None, train steps per epoch).

    On several workers each reads its own share of the train shards, endlessly, so all run
    the same steps however unevenly the shards divide; each validates on the whole val split,
    so every worker's val metrics are the exact ones and take the same number of steps.
    """
    tpu = isinstance(strategy, tf.distribute.TPUStrategy)
    worker = distributed.role(strategy)
    batch_size = config.batch_size
    if worker.count > 1:
        batch_size = distributed.per_replica_batch(config.batch_size, strategy)
    # TPUs need static shapes and full batches; XLA compiles once with static shapes
    static = {"image_size": input_size(config, info), "drop_remainder": tpu}
    augmentation = Augmentation(
        flip=config.flip,
        scale_min=config.scale_min,
        scale_max=config.scale_max,
        color_jitter=config.color_jitter,
        ignore_label=info.ignore_label,
    )

    def train_batches() -> tf.data.Dataset:
        # one endless iterator: a new one per epoch costs seconds of idle teardown
        # (tf.data's autotune thread) on every epoch of a long run
        return make_dataset(
            info.shard_pattern(dataset_dir, "train"),
            batch_size,
            True,
            config.seed,
            augmentation=augmentation,
            class_weights=loss_class_weights(stats, config),
            cache=config.train_cache,
            shard=(worker.index, worker.count),
            **static,
        ).repeat()

    def batches(split: str, size: int) -> int:
        examples = stats["splits"][split]["examples"]
        return examples // size if tpu else math.ceil(examples / size)

    val_batches = batches("val", batch_size)

    def val_data() -> tf.data.Dataset:
        data = make_dataset(info.shard_pattern(dataset_dir, "val"), batch_size, False, **static)
        # a known length: Keras otherwise warns that the input "ran out of data"
        return data.apply(tf.data.experimental.assert_cardinality(val_batches))

    if not val_batches:
        log.warning("train: the val split has no (full) batch; training without validation")
    steps_per_epoch = max(1, batches("train", config.batch_size))
    if worker.count > 1:
        return (
            distributed.distribute(strategy, train_batches),
            distributed.distribute(strategy, val_data) if val_batches else None,
            steps_per_epoch,
        )
    return train_batches(), val_data() if val_batches else None, steps_per_epoch


def loss_class_weights(stats: dict, config: TrainConfig) -> list[float] | None:
    """The per-class loss weights: the stats' median-frequency ones to the configured power."""
    if not config.class_weights:
        return None
    if config.class_weight_power < 0:
        raise ValueError(f"class_weight_power must be >= 0, got {config.class_weight_power}")
    return [weight**config.class_weight_power for weight in stats["class_weights"]]


def _callbacks(
    config: TrainConfig, checkpoint_dir: str, strategy, setup: _Setup, tracked: bool
) -> list[keras.callbacks.Callback]:
    """The fit callbacks; `tracked` (the chief) adds the MLflow logger."""
    callbacks: list[keras.callbacks.Callback] = [StopOnNonFiniteLoss()]
    if tracked:
        callbacks.append(MlflowEpochLogger())
    if config.early_stopping_patience and setup.val_data is not None:
        callbacks.append(_early_stopping(config.early_stopping_patience))
    if checkpoint_dir:
        # last, so the epoch's metrics are logged before the checkpoint says it is done
        state_dir = checkpoints.state_dir(checkpoint_dir, distributed.role(strategy).index)
        callbacks.append(checkpoints.EpochAndStepBackup(state_dir, config.checkpoint_every_steps))
        callbacks.append(distributed.SameResumePoint(strategy, state_dir))
    return callbacks


def _log_inputs(dataset_dir: str, config: TrainConfig, info) -> None:
    """Params and the data set's lineage, once per MLflow run."""
    mlflow.log_params(dataclasses.asdict(config))
    mlflow.log_params({f"data.{k}": v for k, v in dataclasses.asdict(info).items()})
    stats = storage.read_json(storage.join(dataset_dir, "stats.json"))
    mlflow.log_dict(stats, "dataset/stats.json")  # lineage: what this model saw
    mlflow.log_dict(dataclasses.asdict(info), "dataset/dataset.json")
    lineage_path = storage.join(dataset_dir, "lineage.json")
    if storage.exists(lineage_path):
        lineage = storage.read_json(lineage_path)
        mlflow.set_tags({f"segpipe.{k}": v for k, v in lineage.items()})
