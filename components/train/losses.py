"""Segmentation losses: cross-entropy that skips the ignore label, optionally plus soft Dice."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="segpipe")
class CrossEntropyDice(keras.losses.Loss):
    """Sparse cross-entropy on logits (ignore label skipped) + `dice_weight` * soft Dice loss.

    Dice is per image, averaged over the classes (smoothed by 1, so a class absent from both
    label and prediction counts as perfect); ignored pixels count for neither term.
    """

    def __init__(self, num_classes: int, ignore_label: int, dice_weight: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.ignore_label = ignore_label
        self.dice_weight = dice_weight
        self._cross_entropy = keras.losses.SparseCategoricalCrossentropy(
            from_logits=True, ignore_class=ignore_label, reduction=None
        )

    def call(self, y_true, y_pred):
        labels = ops.squeeze(ops.cast(y_true, "int32"), -1)
        valid = ops.cast(ops.not_equal(labels, self.ignore_label), "float32")
        total = ops.cast(self._cross_entropy(y_true, y_pred), "float32")
        if self.dice_weight:
            total = total + self.dice_weight * self._dice_loss(labels, y_pred, valid)[:, None, None]
        # the inner loss's ignore mask does not survive reduction=None: weight valid pixels by
        # all/valid as Keras would, so the batch mean is over labelled pixels only
        scale = ops.divide_no_nan(ops.cast(ops.size(valid), "float32"), ops.sum(valid))
        return total * valid * scale

    def _dice_loss(self, labels, y_pred, valid):
        """1 - mean soft Dice over the classes, per image, ignored pixels left out."""
        valid = valid[..., None]
        one_hot = ops.one_hot(ops.where(valid[..., 0] > 0, labels, 0), self.num_classes)
        probs = ops.softmax(ops.cast(y_pred, "float32"), axis=-1) * valid
        one_hot = ops.cast(one_hot, "float32") * valid
        intersection = ops.sum(probs * one_hot, axis=(1, 2))
        totals = ops.sum(probs, axis=(1, 2)) + ops.sum(one_hot, axis=(1, 2))
        return 1.0 - ops.mean((2.0 * intersection + 1.0) / (totals + 1.0), axis=-1)

    def get_config(self):
        return {
            **super().get_config(),
            "num_classes": self.num_classes,
            "ignore_label": self.ignore_label,
            "dice_weight": self.dice_weight,
        }
