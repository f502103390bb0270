"""Train a segmentation model on the shards, track it in MLflow, export a SavedModel."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import logging
import math
import threading
from collections.abc import Callable, Sequence

import keras
import mlflow
import tensorflow as tf

from components.common import storage
from components.common.data.dataset import DatasetInfo, read_dataset_info
from components.common.settings.config import RunContext, TrainConfig
from components.common.tracking.lineage import (
    TRAIN_SETTINGS_TAG,
    log_training_data,
    training_settings_sha256,
)
from components.common.tracking.outage import OutageWindow, bounded_requests, request_timeout_s
from components.common.tracking.runs import step_run, tracking_uri
from components.common.tracking.step_runs import find_step_run_id
from components.train import checkpoints, distributed, hardware
from components.train.data import Augmentation, make_dataset
from components.train.epoch_metrics import (
    EpochMetricsLogger,
    EpochProgress,
    FailOnLongOutage,
    MetricsSender,
    PendingMetrics,
    pending_path,
)
from components.train.epoch_timing import EpochClock
from components.train.export import export_model
from components.train.losses import CrossEntropyDice
from components.train.mlflow_model import write_mlmodel
from components.train.model import any_size_model, build_model
from components.train.optimization import make_optimizer
from components.train.warm_start import warm_start

log = logging.getLogger(__name__)
STOP_WAIT_S = 30  # for the system metrics monitor's last flush to a server that answers


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
def _system_metrics(enabled: bool, run_id: str, resumed: bool, outage: OutageWindow):
    """CPU, memory and GPU use logged to `run_id` by MLflow's monitor thread while inside.

    Started here rather than by `mlflow.start_run`, so it stops with this block even when
    the server cannot be told that the run ended. The monitor gives up quietly when the
    server is unreachable; training goes on without it. Stopping it waits for its last flush
    a second at most while `outage` says the server is down (the flush goes on alone).
    """
    if enabled and importlib.util.find_spec("psutil") is None:
        log.warning("train: psutil is not installed; no system metrics")
        enabled = False
    monitor = None
    if enabled:
        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

        try:
            monitor = SystemMetricsMonitor(run_id, resume_logging=resumed)
            monitor.start()
        except Exception as error:  # as mlflow.start_run does: metrics are not worth a failure
            log.warning("train: no system metrics: %s", error)
            monitor = None
    try:
        yield
    finally:
        if monitor:
            stopping = threading.Thread(target=monitor.finish, daemon=True)
            stopping.start()
            stopping.join(timeout=1 if outage.down_for else STOP_WAIT_S)


def _early_stopping(patience: int) -> keras.callbacks.EarlyStopping:
    return keras.callbacks.EarlyStopping(
        monitor="val_mean_iou", mode="max", patience=patience, restore_best_weights=True
    )


def train(
    dataset_dir: str,
    model_dir: str,
    config: TrainConfig,
    run: RunContext,
    checkpoint_dir: str = "",
    pipeline_root: str = "",
    workers: int = 0,
    snapshot_dir: str = "",
) -> str:
    """Train on `dataset_dir`'s train split, validate on val, export to `model_dir`.

    Checkpoints go to `checkpoint_dir`, by default
    `<checkpoint_root>/<run.pipeline_run_id>/train` with `<pipeline_root>/checkpoints` standing
    in for an empty root (none when all are empty); a rerun finding one resumes its epochs and
    its MLflow run. `run.model_name@run.alias` is the model a warm start copies weights from.
    `workers`: how many workers the caller started (0: as many as TF_CONFIG names). Several
    workers (TF_CONFIG) train in step; only the chief (worker 0) tracks, exports and removes the
    checkpoint. `snapshot_dir` (the snapshot step's output) becomes the run's dataset input and
    lineage tags.
    Returns the MLflow run id that holds the logged model.
    """
    # first, before any other TensorFlow op: several workers' collectives can be set up only
    # at program start
    strategy, policy = hardware.setup(config.precision)
    distributed.check_worker_count(strategy, workers)
    info = read_dataset_info(dataset_dir)
    stats_path = storage.join(dataset_dir, "stats.json")
    stats = storage.read_json(stats_path)
    keras.utils.set_random_seed(config.seed)
    if config.deterministic:  # with the seed above: the same ops give the same results
        tf.config.experimental.enable_op_determinism()
    # TPUs need static shapes and full batches; XLA compiles once with static shapes
    full_batches = isinstance(strategy, tf.distribute.TPUStrategy)
    steps_per_epoch = train_steps(
        stats, config.batch_size, full_batches, stats_path, training_splits(config)
    )
    checkpoint_dir = checkpoint_dir or checkpoints.checkpoint_dir_for(
        config.checkpoint_root, run.pipeline_run_id, pipeline_root
    )
    inputs = _Inputs(dataset_dir, info, stats, steps_per_epoch, full_batches)
    if not distributed.role(strategy).is_chief:
        _train_as_worker(inputs, config, strategy, checkpoint_dir, run)
        # the chief's run: on Vertex AI every replica reports the task's outputs
        return find_step_run_id(run.experiment, run.pipeline_run_id, "train")
    resumed_run_id = checkpoints.saved_run_id(checkpoint_dir)
    outage = OutageWindow(config.tracking_outage_s, tracking_uri())
    request_s = request_timeout_s(config.tracking_outage_s)
    with (
        # no retries inside a request: the outage window retries, and a hung server costs
        # one timeout a try
        bounded_requests(request_s, max_retries=0),
        step_run(
            "train",
            run.experiment,
            run.pipeline_run_id,
            run_id=resumed_run_id,
            outage=outage,
            dataset_dir=dataset_dir,
        ) as mlflow_run,
        _system_metrics(
            config.system_metrics, mlflow_run.info.run_id, bool(resumed_run_id), outage
        ),
    ):
        run_id = mlflow_run.info.run_id
        pending = PendingMetrics.load(run_id, pending_path(checkpoint_dir))
        pending.flush_within(outage, "logging the metrics an earlier attempt kept")
        if resumed_run_id:
            log.info("train: resuming MLflow run %s from %s", resumed_run_id, checkpoint_dir)
        else:
            outage.retry(
                "logging the run's inputs",
                lambda: _log_inputs(dataset_dir, config, info, snapshot_dir),
            )
            if checkpoint_dir:
                checkpoints.save_run_id(checkpoint_dir, run_id)
        strategy_tags = _strategy_tags(strategy, policy)
        outage.retry("tagging the run", lambda: mlflow.set_tags(strategy_tags))

        def warm_start_and_tag(model: keras.Model) -> None:
            copied = outage.retry(
                "reading the champion's weights",
                lambda: warm_start(model, run.model_name, run.alias),
            )
            tags = {f"segpipe.{k}": v for k, v in copied.items()}
            outage.retry("tagging the run", lambda: mlflow.set_tags(tags))

        train_data, val_data = _datasets(inputs, config, strategy)
        model = _compiled_model(inputs, config, strategy, warm_start_and_tag)
        # epochs never wait on the tracking server: a thread of its own logs their metrics
        sender = MetricsSender(pending, outage).start()

        def report_times(epoch: int, times: dict[str, float]) -> None:
            log.info("train: epoch %d times %s", epoch, {k: round(v, 3) for k, v in times.items()})
            pending.add(epoch, {f"time/{k}": v for k, v in times.items()})
            sender.send()

        clock = EpochClock(report_times)
        tracking = [EpochMetricsLogger(pending, sender), EpochProgress(config.epochs)]
        callbacks = _callbacks(config, checkpoint_dir, strategy, val_data is not None, tracking)
        # last: a tracking outage past the window fails the task only once the epoch is saved
        callbacks.append(FailOnLongOutage(outage, checkpoint_dir))
        callbacks = [clock.first, *callbacks, clock.last]  # around the others: what they take
        try:
            _fit(model, train_data, val_data, inputs.steps_per_epoch, config, callbacks)
        finally:
            sender.stop(wait_s=request_s)
        pending.flush_within(outage, "logging the last epochs' metrics")
        _export(model, model_dir, info, config)
        write_mlmodel(model_dir, run_id, info)  # logged with it: an MLflow model with a signature
        # every worker is done with its checkpoint once all are here
        distributed.barrier(strategy, "the end of training")
        outage.retry("uploading the model", lambda: mlflow.log_artifacts(model_dir, "model"))
    # only now: the model is exported and its run FINISHED; until then a retry resumes
    checkpoints.remove(checkpoint_dir)
    log.info("train: exported to %s, MLflow run %s", model_dir, run_id)
    return run_id


def training_splits(config: TrainConfig) -> tuple[str, ...]:
    """The splits the model learns from: train, and val too for a refit (`train_on_val`)."""
    return ("train", "val") if config.train_on_val else ("train",)


def train_steps(
    stats: dict,
    batch_size: int,
    full_batches: bool,
    stats_path: str,
    splits: Sequence[str] = ("train",),
) -> int:
    """Train steps per epoch over `splits`; an error when they hold no (full) batch."""
    examples = sum(stats["splits"][split]["examples"] for split in splits)
    steps = _batches(examples, batch_size, full_batches)
    if steps < 1:
        detail = f"fewer than one full batch of {batch_size}" if examples else "nothing"
        raise ValueError(
            f"{stats_path}: the {' + '.join(splits)} split has {examples} examples, {detail} "
            "to train on; "
            "check val_fraction and test_fraction, or the split lists, in preprocess"
        )
    return steps


def _batches(examples: int, batch_size: int, full_batches: bool) -> int:
    return examples // batch_size if full_batches else math.ceil(examples / batch_size)


@dataclasses.dataclass(frozen=True)
class _Inputs:
    """What every worker trains on, read once."""

    dataset_dir: str
    info: DatasetInfo
    stats: dict
    steps_per_epoch: int
    full_batches: bool


def _train_as_worker(
    inputs: _Inputs, config: TrainConfig, strategy, checkpoint_dir: str, run: RunContext
) -> None:
    """A non-chief worker's part: the chief's training, step by step, with no outputs."""
    worker = distributed.role(strategy)
    log.info("train: worker %d of %d; the chief tracks and exports", worker.index, worker.count)
    train_data, val_data = _datasets(inputs, config, strategy)
    model = _compiled_model(
        inputs, config, strategy, lambda model: warm_start(model, run.model_name, run.alias)
    )
    callbacks = _callbacks(config, checkpoint_dir, strategy, val_data is not None, [])
    _fit(model, train_data, val_data, inputs.steps_per_epoch, config, callbacks)
    distributed.barrier(strategy, "the end of training")


def _compiled_model(
    inputs: _Inputs, config: TrainConfig, strategy, warm_start_with: Callable[[keras.Model], None]
) -> keras.Model:
    info = inputs.info
    with strategy.scope():
        model = build_model(config, info.num_classes, *input_size(config, info))
        # also on a resumed run: a checkpoint, if one was written, overrides it in fit
        if config.warm_start:
            warm_start_with(model)
        model.compile(
            optimizer=make_optimizer(config, inputs.steps_per_epoch),
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
    return model


def _fit(model, train_data, val_data, steps_per_epoch: int, config: TrainConfig, callbacks):
    model.fit(
        train_data,
        steps_per_epoch=steps_per_epoch,
        validation_data=val_data,
        epochs=config.epochs,
        validation_freq=config.validate_every,
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


def _export(model: keras.Model, model_dir: str, info, config: TrainConfig) -> None:
    """The SavedModel with the test-time augmentation `config` asks for."""
    scales = config.tta_scale_list()
    if scales != (1.0,):
        model = any_size_model(model, config, info.num_classes)
    export_model(model, model_dir, info, config.flip_tta, input_size(config, info), scales)


def input_size(config: TrainConfig, info) -> tuple[int, int]:
    """The model's input (height, width): the configured one, else the data set's."""
    return (config.input_height or info.image_height, config.input_width or info.image_width)


def _datasets(inputs: _Inputs, config: TrainConfig, strategy):
    """(endless train batches, val batches or None).

    On several workers each reads its own share of the train shards, endlessly, so all run
    the same steps however unevenly the shards divide; each validates on the whole val split,
    so every worker gets the exact val metrics in the same number of steps.
    """
    info, dataset_dir = inputs.info, inputs.dataset_dir
    worker = distributed.role(strategy)
    batch_size = config.batch_size
    if worker.count > 1:
        batch_size = distributed.per_replica_batch(config.batch_size, strategy)
    static = {"image_size": input_size(config, info), "drop_remainder": inputs.full_batches}
    augmentation = Augmentation(
        flip=config.flip,
        scale_min=config.scale_min,
        scale_max=config.scale_max,
        color_jitter=config.color_jitter,
        ignore_label=info.ignore_label,
        crop=(config.crop_height, config.crop_width) if config.crop_height else None,
    )

    def train_batches() -> tf.data.Dataset:
        # one endless iterator: a new one per epoch costs seconds of idle teardown
        # (tf.data's autotune thread) on every epoch of a long run
        return make_dataset(
            [info.shard_pattern(dataset_dir, split) for split in training_splits(config)],
            batch_size,
            True,
            config.seed,
            augmentation=augmentation,
            class_weights=loss_class_weights(inputs.stats, config),
            cache=config.train_cache,
            shard=(worker.index, worker.count),
            deterministic=config.deterministic,
            **static,
        ).repeat()

    if config.train_on_val:
        log.info("train: a refit on train + val: no validation")
        return _distributed(strategy, train_batches), None
    val_examples = inputs.stats["splits"]["val"]["examples"]
    val_batches = _batches(val_examples, batch_size, inputs.full_batches)

    def val_data() -> tf.data.Dataset:
        data = make_dataset(info.shard_pattern(dataset_dir, "val"), batch_size, False, **static)
        # a known length: Keras otherwise warns that the input "ran out of data"
        return data.apply(tf.data.experimental.assert_cardinality(val_batches))

    if not val_batches:
        log.warning("train: the val split has no (full) batch; training without validation")
        return _distributed(strategy, train_batches), None
    return _distributed(strategy, train_batches), _distributed(strategy, val_data)


def _distributed(strategy, make: Callable[[], tf.data.Dataset]):
    """`make()` as is on one worker, as this worker's part of the input on several."""
    if distributed.role(strategy).count > 1:
        return distributed.distribute(strategy, make)
    return make()


def loss_class_weights(stats: dict, config: TrainConfig) -> list[float] | None:
    """The per-class loss weights: the stats' median-frequency ones to the configured power."""
    if not config.class_weights:
        return None
    return [weight**config.class_weight_power for weight in stats["class_weights"]]


def _callbacks(
    config: TrainConfig,
    checkpoint_dir: str,
    strategy,
    validated: bool,
    tracking: list[keras.callbacks.Callback],
) -> list[keras.callbacks.Callback]:
    """The fit callbacks of every worker; `tracking` (the chief's) log the epochs."""
    callbacks: list[keras.callbacks.Callback] = [StopOnNonFiniteLoss(), *tracking]
    if config.early_stopping_patience and validated:
        callbacks.append(_early_stopping(config.early_stopping_patience))
    if checkpoint_dir:
        # after the logger, so the epoch's metrics are logged (or kept next to the checkpoint)
        # before the checkpoint says it is done
        state_dir = checkpoints.state_dir(checkpoint_dir, distributed.role(strategy).index)
        callbacks.append(checkpoints.EpochAndStepBackup(state_dir, config.checkpoint_every_steps))
        callbacks.append(distributed.SameResumePoint(strategy, state_dir))
    return callbacks


def _log_inputs(dataset_dir: str, config: TrainConfig, info, snapshot_dir: str = "") -> None:
    """Params and the data set's lineage, once per MLflow run."""
    mlflow.log_params(dataclasses.asdict(config))
    # what the snapshot step compares with, to tell whether a retraining would change anything
    mlflow.set_tag(TRAIN_SETTINGS_TAG, training_settings_sha256(config))
    if snapshot_dir:
        log_training_data(snapshot_dir, context="training", model_run=True)
    mlflow.log_params({f"data.{k}": v for k, v in dataclasses.asdict(info).items()})
    stats = storage.read_json(storage.join(dataset_dir, "stats.json"))
    mlflow.log_dict(stats, "dataset/stats.json")  # lineage: what this model saw
    mlflow.log_dict(dataclasses.asdict(info), "dataset/dataset.json")
    lineage_path = storage.join(dataset_dir, "lineage.json")
    if storage.exists(lineage_path):
        lineage = storage.read_json(lineage_path)
        mlflow.set_tags({f"segpipe.{k}": v for k, v in lineage.items()})
