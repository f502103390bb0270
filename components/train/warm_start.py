"""Warm start: copy a registered model's weights into a new model, layer by layer by name."""

from __future__ import annotations

import logging
import os

import keras
import numpy as np

from components.common.settings.config import DEFAULT_ALIAS

log = logging.getLogger(__name__)

LAYER_WEIGHTS_FILE = "layer_weights.npz"  # in every export, next to the SavedModel
_SEP = "::"  # layer names never contain it; keys are "<layer>::<index>"


def _leaf_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """Layers with weights, nested models (a backbone) opened up."""
    leaves = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            leaves.extend(_leaf_layers(layer))
        elif layer.weights:
            leaves.append(layer)
    return leaves


def save_layer_weights(model: keras.Model, path: str) -> None:
    """Every layer's weights keyed by layer name: loadable into a different architecture.

    Keras' own .weights.h5 keys layers by position and class, so it cannot be matched
    against another model; names survive changes of width, depth or head.
    """
    arrays = {
        f"{layer.name}{_SEP}{i}": np.asarray(w)
        for layer in _leaf_layers(model)
        for i, w in enumerate(layer.get_weights())
    }
    np.savez(path, **arrays)


def copy_matching_weights(model: keras.Model, path: str) -> tuple[list[str], list[str]]:
    """Load `path` into `model` where a layer's name and all its shapes match.

    Returns (copied layer names, layer names left as initialised).
    """
    grouped: dict[str, dict[int, np.ndarray]] = {}
    with np.load(path) as saved:
        for key in saved.files:
            name, _, index = key.rpartition(_SEP)
            grouped.setdefault(name, {})[int(index)] = saved[key]
    copied, skipped = [], []
    for layer in _leaf_layers(model):
        source = grouped.get(layer.name)
        current = layer.get_weights()
        values = [source.get(i) for i in range(len(current))] if source else []
        if (
            source
            and len(source) == len(current)
            and all(
                v is not None and v.shape == c.shape for v, c in zip(values, current, strict=True)
            )
        ):
            layer.set_weights(values)
            copied.append(layer.name)
        else:
            skipped.append(layer.name)
    return copied, skipped


def champion_weights(model_name: str, alias: str = DEFAULT_ALIAS) -> str | None:
    """Local path of `model_name@alias`'s layer weights; None when there is no such model."""
    from mlflow.tracking import MlflowClient

    from components.common.tracking.registry import alias_version, download_version
    from components.common.tracking.runs import tracking_uri

    version = alias_version(MlflowClient(tracking_uri()), model_name, alias)
    if version is None:
        return None
    path = os.path.join(download_version(version), LAYER_WEIGHTS_FILE)
    if not os.path.exists(path):
        log.warning("train: %s@%s has no %s; cannot warm start", model_name, alias, path)
        return None
    return path


def warm_start(model: keras.Model, model_name: str, alias: str = DEFAULT_ALIAS) -> dict:
    """Copy `model_name@alias`'s weights into `model`; returns what happened, for tracking."""
    path = champion_weights(model_name, alias)
    if path is None:
        log.warning("train: no %s@%s to warm start from; starting from scratch", model_name, alias)
        return {"warm_start": "none"}
    copied, skipped = copy_matching_weights(model, path)
    log.info(
        "train: warm start from %s@%s: %d layers copied, %d not",
        model_name,
        alias,
        len(copied),
        len(skipped),
    )
    return {
        "warm_start": f"{model_name}@{alias}",
        "warm_start_layers": len(copied),
        "warm_start_skipped": len(skipped),
    }
