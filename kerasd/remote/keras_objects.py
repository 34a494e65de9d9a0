"""Keras objects as the job spec takes them: models as their JSON, optimizers, losses and metrics as names or
`{class_name, config}`, callbacks as declared callback specs (Keras's own arguments that differ from its defaults).
"""

from __future__ import annotations

import inspect
import json
import math
from typing import Any

import keras
import numpy as np

SUPPORTED_CALLBACKS = ("EarlyStopping", "ReduceLROnPlateau", "ModelCheckpoint", "TensorBoard", "CSVLogger",
                       "TerminateOnNaN", "LearningRateScheduler")
# Callback arguments that name local files: the worker writes its own, which come back as artifacts, and
# the SDK puts them where the callback said.
CALLBACK_PATHS = {"ModelCheckpoint": "filepath", "TensorBoard": "log_dir", "CSVLogger": "filename"}
# Where Keras keeps a constructor argument under another attribute name.
CALLBACK_ATTRIBUTES = {("CSVLogger", "separator"): "sep"}
CALLBACK_SKIP = {("TensorBoard", "embeddings_metadata"), ("TensorBoard", "profile_batch")}


def _tidy_float(value: float) -> float:
    """Keras stores hyperparameters as float32: 0.0010000000474974513 goes back as 0.001."""
    narrow = np.float32(value)
    return float(str(narrow)) if float(narrow) == value else value


def _tidy(value: Any) -> Any:
    if isinstance(value, float) and math.isfinite(value):
        return _tidy_float(value)
    if isinstance(value, dict):
        return {key: _tidy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_tidy(item) for item in value]
    return value


def _function_name(name: str) -> str:
    """TF's aliases of Keras functions (`tf.nn.softmax` serializes as `softmax_v2`)."""
    for candidate in (name, name.removesuffix("_v2"), name.removesuffix("_v1")):
        if any(hasattr(module, candidate) for module in (keras.activations, keras.losses, keras.metrics)):
            return candidate
    return name


def serialize(value: Any, what: str) -> Any:
    """A compile argument as the job spec takes it: names stay names, objects become {class_name, config}."""
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, dict):
        return {str(key): serialize(item, f"{what}[{key!r}]") for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [serialize(item, f"{what}[{index}]") for index, item in enumerate(value)]
    try:
        document = keras.saving.serialize_keras_object(value)
    except Exception as exc:
        raise TypeError(f"{what}: {value!r} cannot be sent to kerasd ({exc}); use a Keras built-in by name or "
                        "object, or a server-side plugin") from None
    if isinstance(document, str):
        return _function_name(document)
    if not isinstance(document, dict) or "class_name" not in document:
        raise TypeError(f"{what}: {value!r} is not a Keras object kerasd can send")
    if document["class_name"] == "function":
        return _function_name(str(document.get("config")))
    if document.get("class_name") == "__lambda__" or (
            inspect.isfunction(value) and getattr(value, "__name__", "") == "<lambda>"):
        raise TypeError(f"{what}: a lambda is code; kerasd sends names and configs only")
    sent = {"class_name": document["class_name"], "config": _tidy(document.get("config") or {})}
    registered = document.get("registered_name")
    if registered and registered != document["class_name"]:
        sent["registered_name"] = registered
    return sent


def _normalize_model_config(node: Any) -> Any:
    """Model JSON as the server's allowlist reads it: TF function aliases become Keras activation names."""
    if isinstance(node, dict):
        if node.get("class_name") == "function" and isinstance(node.get("config"), str):
            return _function_name(node["config"])
        return {key: _normalize_model_config(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_normalize_model_config(item) for item in node]
    return node


def model_document(model: Any) -> dict[str, Any]:
    """`model.to_json()`, normalized, without the local `compile()`'s config: each job carries the remote model's
    own compile, and a model compiled locally (with an optimizer that makes its variables when built, as Adam
    does) is otherwise refused by the server's spec checker."""
    document = _normalize_model_config(json.loads(model.to_json()))
    document.pop("compile_config", None)
    return document


def sequential_spec(document: dict[str, Any]) -> dict[str, Any] | None:
    """A Sequential of built-in layers in kerasd's spec form; None for any other model."""
    if document.get("class_name") != "Sequential":
        return None
    config = document.get("config", {})
    input_shape = None
    layers = []
    for layer in config.get("layers", []):
        if layer.get("class_name") == "InputLayer":
            shape = layer.get("config", {}).get("batch_shape") or layer.get("config", {}).get("batch_input_shape")
            input_shape = list(shape[1:]) if shape else None
            continue
        if layer.get("registered_name") not in (None, layer.get("class_name")):
            return None
        layers.append({"class_name": layer["class_name"], "config": layer.get("config", {})})
    if input_shape is None and config.get("build_input_shape"):
        input_shape = list(config["build_input_shape"][1:])
    spec: dict[str, Any] = {"type": "sequential", "name": config.get("name", "sequential"), "layers": layers}
    if input_shape is not None:
        spec["input_shape"] = input_shape
    return spec


def callback_spec(callback: Any) -> tuple[dict[str, Any], str | None]:
    """A Keras callback instance as `{class_name, config}` (arguments that differ from Keras's defaults),
    and the local path it names (where its artifact is put after the job)."""
    name = type(callback).__name__
    if name not in SUPPORTED_CALLBACKS or not isinstance(callback, keras.callbacks.Callback):
        raise TypeError(f"callback {name}: kerasd runs the declared callbacks {', '.join(SUPPORTED_CALLBACKS)}; "
                        "a custom Callback is code and cannot be sent (its events are in client.jobs.events)")
    config: dict[str, Any] = {}
    local_path = None
    for parameter in inspect.signature(type(callback).__init__).parameters.values():
        if parameter.name == "self" or parameter.kind in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL):
            continue
        if (name, parameter.name) in CALLBACK_SKIP:
            continue
        attribute = CALLBACK_ATTRIBUTES.get((name, parameter.name), parameter.name)
        if not hasattr(callback, attribute):
            continue
        value = getattr(callback, attribute)
        if CALLBACK_PATHS.get(name) == parameter.name:
            local_path = str(value) if value else None
            continue
        if parameter.name == "schedule":
            if not isinstance(value, keras.optimizers.schedules.LearningRateSchedule):
                raise TypeError("LearningRateScheduler: give `schedule` as a keras.optimizers.schedules "
                                "LearningRateSchedule (evaluated at each epoch); a Python function is code")
            config["schedule"] = serialize(value, "schedule")
            continue
        if parameter.default is not inspect.Parameter.empty and _same(value, parameter.default):
            continue
        if isinstance(value, float):
            value = _tidy_float(value)
        if isinstance(value, str | bool | int | float) or value is None:
            config[parameter.name] = value
    if name == "ModelCheckpoint":
        config["save_weights_only"] = bool(getattr(callback, "save_weights_only", False))
    return {"class_name": name, "config": config}, local_path


def _same(value: Any, default: Any) -> bool:
    try:
        return bool(value == default) and type(value) is type(default)
    except Exception:
        return False


def output_structure(model: Any) -> str:
    """How Keras's `predict` returns this model's outputs: "dict" for a functional model built with a dict of
    outputs (keyed as that dict), "list" otherwise (one output comes back as one array either way)."""
    try:
        config = model.get_config()
    except Exception:  # a subclassed model (a plugin) may not give one
        return "list"
    return "dict" if isinstance(config, dict) and isinstance(config.get("output_layers"), dict) else "list"
