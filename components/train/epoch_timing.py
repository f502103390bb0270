"""Where an epoch's time goes: training steps, validation, and the epoch-end callbacks."""

from __future__ import annotations

import time
from collections.abc import Callable

import keras


class EpochClock:
    """Two callbacks around the others: `first` goes first in the list, `last` last.

    Per epoch: `train_s` (the train steps, their input included), `val_s` (validation),
    `callbacks_s` (every epoch-end callback: metrics, checkpoints, early stopping) and
    `epoch_s`, handed to `report(epoch, times)` once the epoch is over.
    """

    def __init__(self, report: Callable[[int, dict[str, float]], None]):
        self.report = report
        self.first = _First(self)
        self.last = _Last(self)
        self._marks: dict[str, float] = {}

    def mark(self, name: str) -> None:
        self._marks[name] = time.perf_counter()

    def close(self, epoch: int) -> None:
        self.mark("end")
        marks = self._marks
        val_s = marks.get("val_end", 0.0) - marks.get("val_begin", 0.0)
        callbacks_s = marks["end"] - marks["callbacks"]
        epoch_s = marks["end"] - marks["begin"]
        times = {
            "epoch_s": epoch_s,
            "train_s": epoch_s - val_s - callbacks_s,
            "val_s": val_s,
            "callbacks_s": callbacks_s,
        }
        self._marks = {}
        self.report(epoch + 1, times)


class _First(keras.callbacks.Callback):
    def __init__(self, clock: EpochClock):
        super().__init__()
        self.clock = clock

    def on_epoch_begin(self, epoch, logs=None):
        self.clock.mark("begin")

    def on_test_begin(self, logs=None):
        self.clock.mark("val_begin")

    def on_test_end(self, logs=None):
        self.clock.mark("val_end")

    def on_epoch_end(self, epoch, logs=None):
        self.clock.mark("callbacks")


class _Last(keras.callbacks.Callback):
    def __init__(self, clock: EpochClock):
        super().__init__()
        self.clock = clock

    def on_epoch_end(self, epoch, logs=None):
        self.clock.close(epoch)
