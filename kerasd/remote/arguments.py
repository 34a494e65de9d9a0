"""Keras calls as job requests: `compile`'s arguments as the job's compile document, `fit`'s, `evaluate`'s and
`predict`'s as the job's arguments under Keras's own names (only those that differ from Keras's defaults)."""

from __future__ import annotations

import math
from typing import Any

from kerasd.data import Dataset
from kerasd.remote.keras_objects import callback_spec, serialize
from kerasd.remote.uploads import Uploader

# Arguments Keras 3 removed: sent on, so the server's answer says what replaced them.
REMOVED_COMPILE_ARGUMENTS = {"sample_weight_mode", "target_tensors", "distribute"}


def verbosity(verbose: Any) -> int:
    return 1 if verbose == "auto" else int(verbose)


def compile_document(*, optimizer: Any, loss: Any, loss_weights: Any, metrics: Any, weighted_metrics: Any,
                     run_eagerly: bool, steps_per_execution: int, jit_compile: Any,
                     removed: dict[str, Any]) -> dict[str, Any]:
    document: dict[str, Any] = {"optimizer": serialize(optimizer, "optimizer"), "loss": serialize(loss, "loss")}
    if metrics is not None:
        document["metrics"] = serialize(list(metrics) if isinstance(metrics, tuple) else metrics, "metrics")
    if loss_weights is not None:
        document["loss_weights"] = loss_weights
    if weighted_metrics is not None:
        document["weighted_metrics"] = serialize(weighted_metrics, "weighted_metrics")
    if run_eagerly:
        document["run_eagerly"] = True
    if steps_per_execution != 1:
        document["steps_per_execution"] = steps_per_execution
    if jit_compile != "auto":
        document["jit_compile"] = jit_compile
    unknown = set(removed) - REMOVED_COMPILE_ARGUMENTS
    if unknown:
        raise TypeError(f"compile() got an unexpected keyword argument {sorted(unknown)[0]!r}")
    document.update(removed)
    return document


def fit_arguments(uploads: Uploader, x: Any, y: Any, *, epochs: int, sample_weight: Any, class_weight: Any,
                  validation_data: Any, **optional: Any) -> dict[str, Any]:
    """`optional`: batch_size, validation_split, shuffle, initial_epoch, steps_per_epoch, validation_steps and
    validation_freq, each sent only when it is not Keras's default."""
    defaults = {"batch_size": None, "validation_split": 0.0, "shuffle": True, "initial_epoch": 0,
                "steps_per_epoch": None, "validation_steps": None, "validation_freq": 1}
    arguments: dict[str, Any] = {"x": uploads.inputs(x, "x"), "epochs": epochs}
    if y is not None:
        arguments["y"] = uploads.inputs(y, "y")
    arguments.update({name: value for name, value in optional.items() if value != defaults[name]})
    if class_weight is not None:
        arguments["class_weight"] = {str(int(k)): float(v) for k, v in class_weight.items()}
    if sample_weight is not None:
        arguments["sample_weight"] = uploads.ref(sample_weight, "sample_weight")
    if validation_data is not None:
        arguments["validation_data"] = uploads.validation(validation_data)
    return arguments


def callback_specs(callbacks: list[Any] | None) -> list[tuple[dict[str, Any], str | None]]:
    """Each callback's spec, with the local path it names (where its file is put after the job)."""
    return [callback_spec(callback) for callback in callbacks or []]


def run_arguments(uploads: Uploader, x: Any, *, y: Any = None, sample_weight: Any = None,
                  **optional: Any) -> dict[str, Any]:
    """`evaluate`'s or `predict`'s arguments: the data, and batch_size / steps where given."""
    arguments: dict[str, Any] = {"x": uploads.inputs(x, "x")}
    if y is not None:
        arguments["y"] = uploads.inputs(y, "y")
    arguments.update({name: value for name, value in optional.items() if value is not None})
    if sample_weight is not None:
        arguments["sample_weight"] = uploads.ref(sample_weight, "sample_weight")
    return arguments


def steps_of(x: Any, batch_size: int, validation_split: float = 0.0) -> int | None:
    """Batches per epoch as Keras counts them, for the progress bar until the worker says."""
    if isinstance(x, Dataset):
        count = x.cardinality()
        return count if count > 0 else None
    try:
        first = next(iter(x.values())) if isinstance(x, dict) else (x[0] if isinstance(x, list | tuple) else x)
        rows = len(first)
    except (TypeError, StopIteration):
        return None
    if validation_split:
        rows = math.ceil(rows * (1.0 - validation_split))
    return -(-rows // batch_size)
