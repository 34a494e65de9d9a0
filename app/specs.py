"""Model and compile specs as users write them, and their translation into Keras config documents.

Pure Python: the translation only shapes dictionaries the way Keras's serializer writes them; building
and checking a model happens in the spec checker (app.spec_checker), never in the API process.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

# The tutorial writes activations as functions (`tf.nn.relu`); Keras configs name them as strings.
_FUNCTION_PREFIXES = ("tf.keras.activations.", "keras.activations.", "tf.nn.", "tf.math.", "tf.")
# Argument-name suffixes that take a serialized Keras object, and the module it comes from.
_OBJECT_ARGUMENTS = {
    "_initializer": "keras.initializers",
    "_regularizer": "keras.regularizers",
    "_constraint": "keras.constraints",
}
# The tutorial's `l1(0.01)` / `l2(0.01)` / `l1_l2(l1=0.01, l2=0.01)` written as a string.
_REGULARIZER_CALL = re.compile(r"^\s*(l1|l2)\s*\(\s*([0-9.eE+-]+)\s*\)\s*$")

EXAMPLE_SEQUENTIAL = {
    "type": "sequential",
    "name": "seed_mlp",
    "input_shape": [72],
    "layers": [
        {"class_name": "Dense", "units": 32, "activation": "relu"},
        {"class_name": "Dense", "units": 32, "activation": "tf.nn.relu"},
        {"class_name": "Dense", "units": 10, "activation": "softmax"},
    ],
}


class LayerSpec(BaseModel):
    """One layer: `class_name` plus its Keras arguments, either flat or under `config`."""

    model_config = ConfigDict(extra="allow")

    class_name: str = Field(min_length=1, max_length=100, examples=["Dense"])
    config: dict[str, Any] | None = None

    def arguments(self) -> dict[str, Any]:
        flat = dict(self.model_extra or {})
        if self.config is not None and flat:
            raise ValueError("give a layer's arguments either flat or under 'config', not both")
        return dict(self.config) if self.config is not None else flat


class SequentialSpec(BaseModel):
    """`keras.Sequential`: layers in order (tutorial §2.1, §2.2)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [EXAMPLE_SEQUENTIAL]})

    type: Literal["sequential"] = "sequential"
    name: str = Field(default="sequential", pattern=r"^[A-Za-z0-9_.-]{1,200}$")
    # Without it the model is built when the data is known, as Keras does.
    input_shape: list[int | None] | None = Field(default=None, max_length=8)
    layers: list[LayerSpec] = Field(min_length=1, max_length=1000)

    @model_validator(mode="after")
    def _positive_dims(self) -> SequentialSpec:
        if self.input_shape is not None and any(d is not None and d <= 0 for d in self.input_shape):
            raise ValueError("input_shape dimensions must be positive integers (or null for any size)")
        return self


def function_name(value: str) -> str:
    for prefix in _FUNCTION_PREFIXES:
        if value.startswith(prefix):
            return value[len(prefix):]
    return value


def _object_argument(value: Any, module: str) -> Any:
    if isinstance(value, str):
        call = _REGULARIZER_CALL.match(value)
        if call and module == "keras.regularizers":
            kind, amount = call.groups()
            return {"module": module, "class_name": kind.upper(), "config": {kind: float(amount)},
                    "registered_name": None}
        return value
    if isinstance(value, dict) and "class_name" in value:
        return {"module": module, "registered_name": None, "config": {}, **value}
    return value


def layer_config(layer: LayerSpec) -> dict[str, Any]:
    arguments = layer.arguments()
    for key, value in list(arguments.items()):
        if key == "activation" and isinstance(value, str):
            arguments[key] = function_name(value)
        for suffix, module in _OBJECT_ARGUMENTS.items():
            if key.endswith(suffix):
                arguments[key] = _object_argument(value, module)
    return {"module": "keras.layers", "class_name": layer.class_name, "config": arguments,
            "registered_name": None}


def sequential_config(spec: SequentialSpec) -> dict[str, Any]:
    """The spec as the config `keras.Sequential.to_json()` would have written for it."""
    layers = []
    if spec.input_shape is not None:
        layers.append({"module": "keras.layers", "class_name": "InputLayer",
                       "config": {"batch_shape": [None, *spec.input_shape]}, "registered_name": None})
    layers.extend(layer_config(layer) for layer in spec.layers)
    return {"module": "keras", "class_name": "Sequential", "registered_name": None,
            "config": {"name": spec.name, "layers": layers}}


# --- compile ------------------------------------------------------------------------------------

def keras_object(value: Any, module: str) -> Any:
    """A name stays a name (Keras resolves it); `{class_name, config}` becomes a serialized object."""
    if isinstance(value, str):
        return function_name(value) if module != "keras.optimizers" else value
    if isinstance(value, dict):
        return {"module": module, "registered_name": None, "config": {}, **value}
    return value


def estimate_params(spec: SequentialSpec) -> int:
    """A lower bound on parameters, known before anything is built, for the layers that dominate size.

    Lets the API refuse an absurd model (Dense(10**6) on 10**6 inputs) without asking TensorFlow to
    allocate it; everything else is counted exactly by the spec checker after building.
    """
    total = 0
    width = spec.input_shape[-1] if spec.input_shape else None
    for layer in spec.layers:
        arguments = layer.arguments()
        if layer.class_name == "Dense" and isinstance(arguments.get("units"), int):
            units = arguments["units"]
            total += (width or 1) * units + (units if arguments.get("use_bias", True) else 0)
            width = units
        elif layer.class_name == "Embedding":
            dims = [arguments.get("input_dim"), arguments.get("output_dim")]
            if all(isinstance(d, int) for d in dims):
                total += dims[0] * dims[1]
                width = dims[1]
    return total
