"""Optimizers and learning-rate schedules (cosine, polynomial, constant) with linear warm-up."""

from __future__ import annotations

import keras

from components.common.settings.config import LR_SCHEDULES, OPTIMIZERS, TrainConfig


@keras.saving.register_keras_serializable(package="segpipe")
class WarmUp(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up from ~0 to the schedule's start over `warmup_steps`, then `after`."""

    def __init__(self, after, warmup_steps: int, peak: float):
        self.after = after
        self.warmup_steps = warmup_steps
        self.peak = peak

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        warm = self.peak * (step + 1.0) / float(self.warmup_steps)
        # the schedule after warm-up starts at its own step 0
        rest = self.after(keras.ops.maximum(step - self.warmup_steps, 0.0))
        return keras.ops.where(step < self.warmup_steps, warm, rest)

    def get_config(self):
        return {
            "after": keras.optimizers.schedules.serialize(self.after),
            "warmup_steps": self.warmup_steps,
            "peak": self.peak,
        }


def make_schedule(config: TrainConfig, steps_per_epoch: int):
    """The learning rate per step: `config.lr_schedule` over the epochs after the warm-up."""
    if config.lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}")
    if config.warmup_epochs >= config.epochs and config.warmup_epochs:
        raise ValueError("warmup_epochs must be fewer than epochs")
    warmup_steps = config.warmup_epochs * steps_per_epoch
    decay_steps = max(1, steps_per_epoch * config.epochs - warmup_steps)
    rate = config.learning_rate
    if config.lr_schedule == "cosine":
        schedule = keras.optimizers.schedules.CosineDecay(rate, decay_steps, alpha=0.05)
    elif config.lr_schedule == "polynomial":
        schedule = keras.optimizers.schedules.PolynomialDecay(
            rate, decay_steps, end_learning_rate=rate * 0.01, power=0.9
        )
    else:
        return WarmUp(_Constant(rate), warmup_steps, rate) if warmup_steps else rate
    return WarmUp(schedule, warmup_steps, rate) if warmup_steps else schedule


@keras.saving.register_keras_serializable(package="segpipe")
class _Constant(keras.optimizers.schedules.LearningRateSchedule):
    def __init__(self, rate: float):
        self.rate = rate

    def __call__(self, step):
        return keras.ops.convert_to_tensor(self.rate, "float32")

    def get_config(self):
        return {"rate": self.rate}


def make_optimizer(config: TrainConfig, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    """`config.optimizer` over the schedule; SGD and RMSprop use `config.momentum`."""
    schedule = make_schedule(config, steps_per_epoch)
    if config.optimizer == "adam":
        return keras.optimizers.Adam(schedule)
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(schedule, momentum=config.momentum)
    if config.optimizer == "rmsprop":
        return keras.optimizers.RMSprop(schedule, momentum=config.momentum)
    raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {config.optimizer!r}")
