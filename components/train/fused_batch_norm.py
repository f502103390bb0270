"""Batch normalization as one fused TensorFlow op (FusedBatchNormV3), as tf.keras 2 had it.

Keras 3 normalizes with separate moments, subtract, scale and casts: under mixed_bfloat16 on
a CPU those memory-bound ops took half the U-Net's train step (measured with
tests/benchmarks/bench_train.py). The fused op runs on oneDNN (bfloat16 in, float32
statistics), cuDNN and XLA alike. Same weights, names and update rule as Keras's layer, so
checkpoints and warm starts carry over.
"""

from __future__ import annotations

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="segpipe")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """keras.layers.BatchNormalization over the channels of NHWC images, fused; other shapes
    and axes (and no center or scale) fall back to the Keras layer."""

    def _fusable(self, inputs) -> bool:
        return (
            len(inputs.shape) == 4
            and self.axis in (-1, 3, [3], [-1])
            and self.center
            and self.scale
            and keras.backend.backend() == "tensorflow"
        )

    def call(self, inputs, training=None, mask=None):
        if not self._fusable(inputs):
            return super().call(inputs, training=training, mask=mask)
        gamma, beta = tf.cast(self.gamma, tf.float32), tf.cast(self.beta, tf.float32)
        if training and self.trainable:
            outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
                inputs, gamma, beta, epsilon=self.epsilon, is_training=True
            )
            # the op's variance is Bessel-corrected; Keras keeps the biased one
            count = tf.cast(tf.reduce_prod(tf.shape(inputs)[:-1]), tf.float32)
            variance = variance * (count - 1.0) / count
            momentum = self.momentum
            self.moving_mean.assign(self.moving_mean * momentum + mean * (1.0 - momentum))
            self.moving_variance.assign(
                self.moving_variance * momentum + variance * (1.0 - momentum)
            )
            return outputs
        outputs, _, _ = tf.compat.v1.nn.fused_batch_norm(
            inputs,
            gamma,
            beta,
            mean=tf.cast(self.moving_mean, tf.float32),
            variance=tf.cast(self.moving_variance, tf.float32),
            epsilon=self.epsilon,
            is_training=False,
        )
        return outputs
