"""Per-epoch metrics into MLflow that survive a tracking outage and a restart of the task."""

from __future__ import annotations

import logging
import math
import threading
import time

import keras

from components.common import progress, storage
from components.common.tracking.outage import OutageWindow

log = logging.getLogger(__name__)

PENDING_FILE = "pending_metrics.json"  # next to the checkpoint: metrics MLflow has not got yet
# Keras names the training batches' running IoU `mean_iou`; in MLflow that key is evaluate's
# score of the exported model (the pipeline's headline), so the train run names it apart
RENAMED = {"mean_iou": "train_mean_iou"}


def pending_path(checkpoint_dir: str) -> str:
    """Where an attempt keeps unlogged metrics for the next one ("" without a checkpoint)."""
    return storage.join(checkpoint_dir, PENDING_FILE) if checkpoint_dir else ""


class PendingMetrics:
    """Metrics not yet logged to run `run_id`, kept in `path` (if any) while there are some.

    Thread-safe: the epoch loop adds while a sender thread logs.
    """

    def __init__(self, run_id: str, path: str = ""):
        self.run_id = run_id
        self.path = path
        self.metrics: list[dict] = []
        self._on_disk = False
        self._data = threading.Lock()  # held briefly: the epoch loop never waits on a request
        self._sending = threading.Lock()  # held for a whole log request: one sender at a time

    @classmethod
    def load(cls, run_id: str, path: str) -> PendingMetrics:
        """What an earlier attempt left in `path` (nothing when there is no such file)."""
        pending = cls(run_id, path)
        if path and storage.exists(path):
            try:
                saved = storage.read_json(path)
                pending.run_id, pending.metrics = saved["run_id"], saved["metrics"]
            except (ValueError, KeyError) as error:  # cut short by a kill mid-write
                log.error("train: unreadable %s, its metrics are lost: %s", path, error)
            pending._on_disk = True
        return pending

    def add(self, step: int, values: dict[str, float]) -> None:
        """Keep one epoch's values (saved next to the checkpoint) until they are logged."""
        timestamp = int(time.time() * 1000)
        with self._data:
            self.metrics += [
                {"key": k, "value": v, "step": step, "timestamp": timestamp}
                for k, v in values.items()
            ]
            self._save()

    def waiting(self) -> int:
        with self._data:
            return len(self.metrics)

    def flush(self, outage: OutageWindow) -> bool:
        """Log them all, one try; what is left stays saved in `path`. True when none is left."""
        with self._sending:
            batch = self._batch()
            if batch and outage.attempt("logging metrics", lambda: self._log(batch)):
                self._logged(batch)
        return not self.waiting()

    def flush_within(self, outage: OutageWindow, action: str) -> None:
        """Log them all, retrying while the server is down; TrackingOutage after the window."""
        with self._sending:
            batch = self._batch()
            if batch:
                outage.retry(action, lambda: self._log(batch))
                self._logged(batch)

    def _batch(self) -> list[dict]:
        with self._data:
            return list(self.metrics)

    def _logged(self, batch: list[dict]) -> None:
        with self._data:
            self.metrics = self.metrics[len(batch) :]  # only the epoch loop appends
            self._save()

    def _log(self, batch: list[dict]) -> None:
        from mlflow.entities import Metric
        from mlflow.tracking import MlflowClient

        # the same key, step, timestamp and value twice is stored once: a retry after a lost
        # reply duplicates nothing
        MlflowClient().log_batch(self.run_id, metrics=[Metric(**m) for m in batch])

    def _save(self) -> None:
        if self.path and (self.metrics or self._on_disk):
            storage.write_json(self.path, {"run_id": self.run_id, "metrics": self.metrics})
            self._on_disk = True


class MetricsSender:
    """Logs pending metrics from a thread of its own, so that a slow or hung tracking server
    never holds up an epoch; the outage window still counts how long it has not answered."""

    def __init__(self, pending: PendingMetrics, outage: OutageWindow):
        self.pending = pending
        self.outage = outage
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="segpipe-metrics", daemon=True)

    def start(self) -> MetricsSender:
        self._thread.start()
        return self

    def send(self) -> None:
        """Log what is pending soon, without waiting for it."""
        self._wake.set()

    def stop(self, wait_s: float) -> None:
        """Stop sending; waits at most `wait_s` for a request in flight (it goes on alone)."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=wait_s)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait()
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                if not self.pending.flush(self.outage):
                    log.warning(
                        "train: %d metric values kept until MLflow answers",
                        self.pending.waiting(),
                    )
            except Exception as error:  # not an outage: said once, kept for the final flush
                log.error("train: logging metrics failed: %s", error)


class EpochMetricsLogger(keras.callbacks.Callback):
    """Hands every epoch's Keras metrics to the sender (kept while the server is down);
    stops on a NaN loss."""

    def __init__(self, pending: PendingMetrics, sender: MetricsSender):
        super().__init__()
        self.pending = pending
        self.sender = sender

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        if not math.isfinite(logs.get("loss", 0.0)):
            raise FloatingPointError(f"training loss became {logs['loss']} at epoch {epoch + 1}")
        self.pending.add(epoch + 1, {RENAMED.get(k, k): float(v) for k, v in logs.items()})
        self.sender.send()


class EpochProgress(keras.callbacks.Callback):
    """An `epoch` progress event per epoch, for segpipe run's progress bar."""

    def __init__(self, epochs: int):
        super().__init__()
        self.epochs = epochs

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        figures = {k: float(logs[k]) for k in ("loss", "val_mean_iou") if k in logs}
        progress.emit("epoch", step="train", epoch=epoch + 1, epochs=self.epochs, **figures)


class FailOnLongOutage(keras.callbacks.Callback):
    """Ends training once the tracking server has been down longer than the window.

    Runs after the checkpoint callback, so the epoch it fails at is saved and a retry of the
    task resumes after it, logging the kept metrics.
    """

    def __init__(self, outage: OutageWindow, checkpoint_dir: str):
        super().__init__()
        self.outage = outage
        self.checkpoint_dir = checkpoint_dir

    def on_epoch_end(self, epoch, logs=None):
        if self.checkpoint_dir:
            consequence = (
                f"training stopped after epoch {epoch + 1}, checkpointed with its unlogged "
                f"metrics in {self.checkpoint_dir}: a retry of this task resumes there"
            )
        else:
            consequence = f"training stopped after epoch {epoch + 1}; no checkpoint_root is set"
        self.outage.check(consequence)


def training_figures(run_id: str) -> dict[str, float]:
    """The train run's headline from its logged epochs: epochs, best val mean IoU, last loss."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    losses = client.get_metric_history(run_id, "loss")
    figures: dict[str, float] = {"epochs": float(len(losses))}
    if losses:
        figures["loss"] = max(losses, key=lambda m: m.step).value
    val = client.get_metric_history(run_id, "val_mean_iou")
    if val:
        figures["best_val_mean_iou"] = max(m.value for m in val)
    return figures
