"""The fused batch normalization computes what Keras's layer does, in training and inference."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
def test_fused_batch_norm_matches_keras_in_training_and_inference(policy):
    import keras

    from components.train.fused_batch_norm import FusedBatchNormalization

    keras.mixed_precision.set_global_policy(policy)
    try:
        fused = FusedBatchNormalization(momentum=0.9)
        plain = keras.layers.BatchNormalization(momentum=0.9)
        x = np.random.default_rng(0).normal(3.0, 2.0, (4, 6, 8, 5)).astype("float32")
        fused.build(x.shape)
        plain.build(x.shape)
        gamma = np.linspace(0.5, 1.5, 5).astype("float32")
        beta = np.linspace(-1, 1, 5).astype("float32")
        for layer in (fused, plain):
            layer.gamma.assign(gamma)
            layer.beta.assign(beta)
        tolerance = 1e-4 if policy == "float32" else 5e-2
        trained = [np.asarray(layer(x, training=True), "float32") for layer in (fused, plain)]
        np.testing.assert_allclose(*trained, atol=tolerance)
        for name in ("moving_mean", "moving_variance"):  # the same update, the same statistics
            np.testing.assert_allclose(
                np.asarray(getattr(fused, name)), np.asarray(getattr(plain, name)), rtol=1e-3
            )
        inferred = [np.asarray(layer(x, training=False), "float32") for layer in (fused, plain)]
        np.testing.assert_allclose(*inferred, atol=tolerance)
        assert [w.name for w in fused.weights] == [w.name for w in plain.weights]
    finally:
        keras.mixed_precision.set_global_policy("float32")
