"""Keras models and compile objects built from checked configs; shared by the spec checker and the worker.

The spec checker (app.specchecker.pool) runs these functions in its sandboxed processes, so a model the API
accepted is built by exactly the code the worker will use.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import json
from typing import Any

import keras

from app.core.settings import get_settings
from app.specchecker import compat
from app.specchecker.safety import KERAS_APPLICATION_OBJECTS, Catalog, check_config

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


# --- plugins (DESIGN.md §4) -------------------------------------------------------------------------

_PLUGIN_KINDS = (("model", keras.Model), ("layer", keras.layers.Layer),
                 ("initializer", keras.initializers.Initializer), ("regularizer", keras.regularizers.Regularizer),
                 ("constraint", keras.constraints.Constraint), ("loss", keras.losses.Loss),
                 ("metric", keras.metrics.Metric))


def _json_value(value: Any) -> Any:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
    return value


def _arguments(cls: type) -> list[dict[str, Any]]:
    """The constructor's own arguments, as a client would write them in a spec."""
    found = []
    for parameter in list(inspect.signature(cls.__init__).parameters.values())[1:]:
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        entry: dict[str, Any] = {"name": parameter.name, "required": parameter.default is parameter.empty}
        if parameter.default is not parameter.empty:
            entry["default"] = _json_value(parameter.default)
        found.append(entry)
    return found


def _describe(registered_name: str, obj: Any, module: str) -> dict[str, Any]:
    kind = next((name for name, base in _PLUGIN_KINDS if isinstance(obj, type) and issubclass(obj, base)),
                "function" if callable(obj) else "object")
    doc = inspect.getdoc(obj) or ""
    return {"registered_name": registered_name, "class_name": obj.__name__, "module": obj.__module__,
            "plugin": module, "kind": kind, "description": doc.split("\n\n")[0].replace("\n", " "),
            "arguments": _arguments(obj) if isinstance(obj, type) else []}


@functools.lru_cache
def plugins() -> list[dict[str, Any]]:
    """Import the enabled plugin modules (KERASD_PLUGINS) and describe what each registered with Keras."""
    found = []
    for module in get_settings().plugin_modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise RuntimeError(f"KERASD_PLUGINS names {module!r}, which cannot be imported: {exc}") from exc
        for registered_name, obj in sorted(keras.saving.get_custom_objects().items()):
            owner = getattr(obj, "__module__", "") or ""
            if owner == module or owner.startswith(module + "."):
                found.append(_describe(registered_name, obj, module))
    return found


# --- the catalog of nameable objects -------------------------------------------------------------------

@functools.lru_cache
def catalog_lists() -> dict[str, Any]:
    """The built-ins a spec may name, read from the installed Keras rather than kept by hand, and the
    objects of the enabled plugins."""
    return {
        "layers": _subclasses(keras.layers, keras.layers.Layer),
        "initializers": _subclasses(keras.initializers, keras.initializers.Initializer),
        "regularizers": _subclasses(keras.regularizers, keras.regularizers.Regularizer),
        "constraints": _subclasses(keras.constraints, keras.constraints.Constraint),
        "optimizers": _subclasses(keras.optimizers, keras.optimizers.Optimizer)
        + _subclasses(keras.optimizers.schedules, keras.optimizers.schedules.LearningRateSchedule),
        "losses": _subclasses(keras.losses, keras.losses.Loss),
        "metrics": _subclasses(keras.metrics, keras.metrics.Metric),
        "dtype_policies": _subclasses(keras.dtype_policies, keras.dtype_policies.DTypePolicy),
        "models": ["Sequential", "Functional"],
        "activations": _functions(keras.activations),
        "functions": sorted(set(_functions(keras.activations) + _functions(keras.losses)
                                + _functions(keras.metrics))),
        "plugins": plugins(),
        # Only those the installed Keras really has, as the Layer or Operation classes their modules name.
        **{f"module:{module}": compat.keras_objects(module, names)
           for module, names in KERAS_APPLICATION_OBJECTS.items()},
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


def check_compile(compile_spec: dict[str, Any]) -> dict[str, Any]:
    """Resolve what compile names, so a wrong name is a 422 at submit rather than a failed job."""
    from app.specchecker.compiling import check_names  # imported here: app.specchecker.compiling imports this module

    check_names(compile_spec)
    return {"checked": True}
