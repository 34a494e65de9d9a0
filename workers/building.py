"""Keras models and compile objects built from checked configs; shared by the spec checker and the worker.

The spec checker (app.spec_checker) runs these functions in its sandboxed processes, so a model the API
accepted is built by exactly the code the worker will use.
"""

from __future__ import annotations

import functools
import json
import math
from typing import Any

import keras

from app.spec_safety import Catalog, check_config

# Names in Keras's public modules that are helpers, not objects a config may name.
_HELPERS = {"get", "serialize", "deserialize"}


def _subclasses(module: Any, base: type) -> list[str]:
    return sorted(
        name for name in dir(module)
        if not name.startswith("_") and isinstance(getattr(module, name), type)
        and issubclass(getattr(module, name), base)
    )


def _functions(module: Any) -> list[str]:
    return sorted(
        name for name in dir(module)
        if not name.startswith("_") and name not in _HELPERS
        and callable(getattr(module, name)) and not isinstance(getattr(module, name), type)
    )


@functools.lru_cache
def catalog_lists() -> dict[str, list[str]]:
    """The built-ins a spec may name, read from the installed Keras rather than kept by hand."""
    return {
        "layers": _subclasses(keras.layers, keras.layers.Layer),
        "initializers": _subclasses(keras.initializers, keras.initializers.Initializer),
        "regularizers": _subclasses(keras.regularizers, keras.regularizers.Regularizer),
        "constraints": _subclasses(keras.constraints, keras.constraints.Constraint),
        "optimizers": _subclasses(keras.optimizers, keras.optimizers.Optimizer)
        + _subclasses(keras.optimizers.schedules, keras.optimizers.schedules.LearningRateSchedule),
        "losses": _subclasses(keras.losses, keras.losses.Loss),
        "metrics": _subclasses(keras.metrics, keras.metrics.Metric),
        "models": ["Sequential"],
        "functions": sorted(set(_functions(keras.activations) + _functions(keras.losses)
                                + _functions(keras.metrics))),
    }


@functools.lru_cache
def catalog() -> Catalog:
    return Catalog.from_lists(catalog_lists())


def versions() -> dict[str, str]:
    found = {"keras": keras.__version__, "backend": keras.backend.backend()}
    try:
        import tensorflow as tf

        found["tensorflow"] = tf.__version__
    except ImportError:
        found["tensorflow"] = None
    return found


def build_model(keras_config: dict[str, Any]) -> keras.Model:
    check_config(keras_config, catalog())
    return keras.saving.deserialize_keras_object(keras_config, safe_mode=True)


def model_from_json(architecture_json: str) -> keras.Model:
    return build_model(json.loads(architecture_json))


def _shape(tensor: Any) -> list[int | None] | None:
    try:
        return list(tensor.shape)
    except (AttributeError, ValueError):
        return None


def summarize(model: keras.Model) -> dict[str, Any]:
    """What `model.summary()` prints, as data: one row per layer, parameter counts, shapes when built."""
    built = bool(model.built)
    layers = []
    for layer in model.layers:
        output = getattr(layer, "output", None) if built else None
        layers.append({
            "name": layer.name,
            "class_name": layer.__class__.__name__,
            "output_shape": _shape(output) if output is not None else None,
            "params": layer.count_params() if layer.built else None,
        })
    summary: dict[str, Any] = {"built": built, "layers": layers}
    if built:
        trainable = sum(math.prod(w.shape) for w in model.trainable_weights)
        total = model.count_params()
        summary.update({
            "total_params": total,
            "trainable_params": trainable,
            "non_trainable_params": total - trainable,
            "input_shape": _shape(model.inputs[0]) if len(model.inputs) == 1 else [_shape(t) for t in model.inputs],
            "output_shape": _shape(model.outputs[0]) if len(model.outputs) == 1 else [_shape(t) for t in model.outputs],
        })
    else:
        summary.update({"total_params": None, "trainable_params": None, "non_trainable_params": None,
                        "input_shape": None, "output_shape": None,
                        "note": "no input shape: the model is built when it first sees data"})
    return summary


def check_model(keras_config: dict[str, Any], max_params: int) -> dict[str, Any]:
    """Build a model from a config: its canonical Keras JSON and summary, or an exception Keras raised."""
    model = build_model(keras_config)
    if model.built and model.count_params() > max_params:
        raise ValueError(f"the model has {model.count_params():,} parameters; the limit is {max_params:,}")
    return {"keras_config": json.loads(model.to_json()), "summary": summarize(model)}


def check_compile(compile_spec: dict[str, Any]) -> dict[str, Any]:
    """Resolve what compile names, so a wrong name is a 422 at submit rather than a failed job."""
    from workers.compiling import check_names  # imported here: workers.compiling imports this module

    check_names(compile_spec)
    return {"checked": True}
