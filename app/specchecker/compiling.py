"""`model.compile` keyword arguments from a job's checked compile document."""

from __future__ import annotations

from typing import Any

import keras

from app.specchecker.building import catalog
from app.specchecker.safety import check_config

# Strings `compile` resolves itself from the model's loss and output shape; `metrics.get` does not know them.
COMPILE_ONLY_METRICS = {"accuracy", "acc", "crossentropy", "ce"}


def _objects(value: Any, getter: Any) -> Any:
    """Names stay names (Keras resolves them); serialized objects become objects; structures recurse."""
    if isinstance(value, list):
        return [_objects(item, getter) for item in value]
    if isinstance(value, dict) and "class_name" not in value:
        return {name: _objects(item, getter) for name, item in value.items()}
    if isinstance(value, dict):
        return getter(value)
    return value


def compile_kwargs(document: dict[str, Any]) -> dict[str, Any]:
    check_config(document, catalog())
    kwargs = {
        "optimizer": keras.optimizers.get(document["optimizer"]),
        "loss": _objects(document.get("loss"), keras.losses.get),
        "metrics": _objects(document.get("metrics"), keras.metrics.get),
        "loss_weights": document.get("loss_weights"),
        "weighted_metrics": _objects(document.get("weighted_metrics"), keras.metrics.get),
        "steps_per_execution": document.get("steps_per_execution", 1),
        "jit_compile": document.get("jit_compile", "auto"),
        "run_eagerly": document.get("run_eagerly", False),
    }
    return kwargs


def _names(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [name for item in value for name in _names(item)]
    if isinstance(value, dict) and "class_name" not in value:
        return [name for item in value.values() for name in _names(item)]
    return []


def check_names(document: dict[str, Any]) -> None:
    """Resolve every loss and metric name now, so a typo is a 422 at submit, not a failed job."""
    kwargs = compile_kwargs(document)
    for name in _names(kwargs["loss"]):
        keras.losses.get(name)
    for name in _names(kwargs["metrics"]) + _names(kwargs["weighted_metrics"]):
        if name not in COMPILE_ONLY_METRICS:
            keras.metrics.get(name)
