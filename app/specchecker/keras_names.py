"""Keras names and serialized objects as Keras's deserializer reads them, in pure Python (specs, compile, callbacks)."""

from __future__ import annotations

from typing import Any

# What users write before a function's name (tutorial spellings); Keras wants the bare name.
_FUNCTION_PREFIXES = ("tf.keras.activations.", "keras.activations.", "tf.nn.", "tf.math.", "tf.")


def function_name(value: str) -> str:
    for prefix in _FUNCTION_PREFIXES:
        if value.startswith(prefix):
            return value[len(prefix):]
    return value


def keras_object(value: Any, module: str) -> Any:
    """A name stays a name (Keras resolves it); `{class_name, config}` becomes a serialized object."""
    if isinstance(value, str):
        return function_name(value) if module != "keras.optimizers" else value
    if isinstance(value, dict):
        return {"module": module, "registered_name": None, "config": {}, **value}
    return value
