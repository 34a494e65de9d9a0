"""`model.compile` keyword arguments from a job's checked compile document."""

from __future__ import annotations

import copy
from typing import Any

import keras

from app.specchecker.building import _functions, _subclasses, catalog
from app.specchecker.name_hints import argument_hint, innermost, suggestion
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


class UnknownName(ValueError):
    """A compile argument Keras cannot make; `detail["field"]` is where it is in the job's `compile`."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.detail = {"field": field}


def _leaves(value: Any, field: str) -> list[tuple[str, Any]]:
    """(field, name or serialized object) for each object of a loss or metrics structure (lists, dicts by output)."""
    if isinstance(value, list):
        return [leaf for i, item in enumerate(value) for leaf in _leaves(item, f"{field}[{i}]")]
    if isinstance(value, dict) and "class_name" not in value:
        return [leaf for key, item in value.items() for leaf in _leaves(item, f"{field}.{key}")]
    return [] if value is None else [(field, value)]


# Short names Keras's `get` maps to its functions, which the modules do not export (the names are only candidates
# for a suggestion: Keras itself resolves what is sent).
SHORT_NAMES = {"loss": {"mse", "mae", "mape", "msle", "kld", "bce"}, "metric": {"mse", "mae", "mape", "msle", "bce"}}


def _string_names(kind: str) -> set[str]:
    """The names `keras.<kind>.get` takes as strings: optimizers by lowercased class name, losses and metrics by
    function or class name (`compile` adds its own metric names)."""
    if kind == "optimizer":
        return {name.lower() for name in _subclasses(keras.optimizers, keras.optimizers.Optimizer)}
    if kind == "loss":
        return set(_functions(keras.losses)) | set(_subclasses(keras.losses, keras.losses.Loss)) | SHORT_NAMES["loss"]
    return (set(_functions(keras.metrics)) | set(_subclasses(keras.metrics, keras.metrics.Metric))
            | COMPILE_ONLY_METRICS | SHORT_NAMES["metric"])


def _resolve(value: Any, field: str, kind: str, module: Any) -> None:
    """`keras.<kind>s.get(value)`, or UnknownName with the closest known name or argument."""
    if kind == "metric" and isinstance(value, str) and value in COMPILE_ONLY_METRICS:
        return
    try:
        module.get(copy.deepcopy(value))  # Keras pops keys out of the config it reads
    except (ValueError, TypeError) as exc:
        if isinstance(value, str):
            known = _string_names(kind)
            # Names as the user wrote them: `categorical_crossentropy` for a snake-case name, a class for CamelCase.
            same_style = {name for name in known if name.islower() == value.islower()}
            closest_names = suggestion(value, same_style) or suggestion(value, known)
            hint = f"; did you mean {closest_names}?" if closest_names else ""
            raise UnknownName(field, f"unknown {kind} {value!r}{hint}") from None
        cls = getattr(module, value.get("class_name", ""), None) if isinstance(value, dict) else None
        if not isinstance(cls, type):
            raise
        reason = innermost(exc)
        config = value.get("config") if isinstance(value.get("config"), dict) else {}
        raise UnknownName(field, f"{cls.__name__}: {reason}{argument_hint(reason, cls, config)}") from None


def check_names(document: dict[str, Any]) -> None:
    """Resolve every optimizer, loss and metric now, so a typo is a 422 at submit (with the closest known name),
    not a failed job."""
    check_config(document, catalog())
    _resolve(document["optimizer"], "optimizer", "optimizer", keras.optimizers)
    for field, value in _leaves(document.get("loss"), "loss"):
        _resolve(value, field, "loss", keras.losses)
    for key in ("metrics", "weighted_metrics"):
        for field, value in _leaves(document.get(key), key):
            _resolve(value, field, "metric", keras.metrics)
    kwargs = compile_kwargs(document)
    for name in _names(kwargs["loss"]):
        keras.losses.get(name)
    for name in _names(kwargs["metrics"]) + _names(kwargs["weighted_metrics"]):
        if name not in COMPILE_ONLY_METRICS:
            keras.metrics.get(name)
