"""Durable training checkpoints so a preempted and restarted train task resumes where it stopped."""

from __future__ import annotations

import logging

import keras

from components.common import storage

log = logging.getLogger(__name__)

RUN_FILE = "mlflow_run.json"  # the MLflow run a resumed task keeps logging into
STATE_DIR = "state"  # BackupAndRestore owns this folder alone


def checkpoint_dir_for(checkpoint_root: str, pipeline_run_id: str, pipeline_root: str = "") -> str:
    """Where one pipeline run's train task checkpoints; the same for every retry of that task.

    Without a `checkpoint_root`, under the pipeline root when TensorFlow can write there (a
    local folder with kfp.local, gs:// on Vertex or a GCS-backed Kubeflow); else nowhere.
    """
    if not checkpoint_root and (pipeline_root.startswith("gs://") or "://" not in pipeline_root):
        checkpoint_root = storage.join(pipeline_root, "checkpoints") if pipeline_root else ""
    elif not checkpoint_root:
        log.warning("train: cannot checkpoint under %s; set checkpoint_root", pipeline_root)
    if not checkpoint_root:
        return ""
    return storage.join(checkpoint_root, pipeline_run_id, "train")


class EpochAndStepBackup(keras.callbacks.BackupAndRestore):
    """BackupAndRestore that saves at every epoch end and, optionally, every `every_steps` steps.

    Keras saves at epoch ends or every N batches, not both; a preempted epoch would then lose
    up to N-1 batches and an epoch's end. Restores happen at the start of `fit`.
    """

    def __init__(self, backup_dir: str, every_steps: int = 0):
        # double_checkpoint: a kill while writing leaves the previous state to fall back on;
        # the checkpoint is removed by the trainer only once the model is exported.
        super().__init__(
            backup_dir,
            save_freq=every_steps or "epoch",
            double_checkpoint=True,
            delete_checkpoint=False,
        )

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        if self.save_freq != "epoch":
            self._save_model()
            self._batches_seen_since_last_saving = 0
        log.info("train: checkpointed epoch %d to %s", epoch + 1, self.backup_dir)

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        done = self.model._initial_epoch or 0
        if done:
            log.info("train: resuming from checkpoint at epoch %d (%d done)", done + 1, done)


def state_dir(checkpoint_dir: str, worker: int | None = None) -> str:
    """BackupAndRestore's folder; workers other than the chief each keep their own copy.

    Keras' callback has every worker write the same files; synchronous workers hold the same
    state, so each restoring its own copy resumes them all at the same epoch.
    """
    if worker:
        return storage.join(checkpoint_dir, f"{STATE_DIR}-worker-{worker}")
    return storage.join(checkpoint_dir, STATE_DIR)


def saved_run_id(checkpoint_dir: str) -> str | None:
    """The MLflow run an earlier attempt of this task logged into, if any."""
    path = storage.join(checkpoint_dir, RUN_FILE)
    if not checkpoint_dir or not storage.exists(path):
        return None
    return storage.read_json(path)["run_id"]


def save_run_id(checkpoint_dir: str, run_id: str) -> None:
    storage.write_json(storage.join(checkpoint_dir, RUN_FILE), {"run_id": run_id})


def remove(checkpoint_dir: str) -> None:
    """Delete a finished run's checkpoint (after its model is safely exported)."""
    import tensorflow as tf

    if checkpoint_dir and tf.io.gfile.exists(checkpoint_dir):
        tf.io.gfile.rmtree(checkpoint_dir)
