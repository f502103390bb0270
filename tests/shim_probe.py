"""One worker of tests/test_multiworker_shims.py: which Keras `fit` failures each shim removes.

Prints one JSON line: {"none": outcome, "nested_reduce": outcome, "all": outcome}, where an
outcome is "ok" or the error's first line.
"""

from __future__ import annotations

import json

import numpy as np
import tensorflow as tf

from components.train.distributed import ALL_SHIMS, NESTED_REDUCE, ShimmedMultiWorkerStrategy


def fit_once(strategy) -> str:
    """A two-step fit with a metric and validation, as the trainer runs it; "ok" or the error."""
    import keras

    def dataset(_context):
        x = np.random.default_rng(0).random((8, 4), dtype=np.float32)
        return tf.data.Dataset.from_tensor_slices((x, (x.sum(1) > 2).astype("int32"))).batch(2)

    data = strategy.distribute_datasets_from_function(lambda ctx: dataset(ctx).repeat())
    with strategy.scope():
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        model.compile(optimizer="sgd", loss=loss, metrics=["accuracy"])
    try:
        model.fit(
            data, steps_per_epoch=2, epochs=1, validation_data=data, validation_steps=1, verbose=0
        )
    except Exception as error:  # the outcome is what the test reads
        return f"{type(error).__name__}: {str(error).splitlines()[0]}"
    return "ok"


def main() -> None:
    strategy = ShimmedMultiWorkerStrategy(shims=frozenset())
    outcomes = {}
    for name, shims in (
        ("none", frozenset()),
        (NESTED_REDUCE, {NESTED_REDUCE}),
        ("all", ALL_SHIMS),
    ):
        strategy.shims = frozenset(shims)
        outcomes[name] = fit_once(strategy)
    print(json.dumps(outcomes), flush=True)


if __name__ == "__main__":
    main()
