"""Model and compile specs as users write them, and their translation into Keras config documents.

Pure Python: the translation only shapes dictionaries the way Keras's serializer writes them; building
and checking a model happens in the spec checker (app.specchecker.pool), never in the API process.

The forms `POST /v1/models` takes as JSON (a `type` picks one; a body that is a Keras config itself, with
`class_name` at the top, is Keras JSON):
- `sequential`: layers in order (tutorial §2.1, §2.2);
- `functional`: named inputs, layers called on earlier outputs, shared layers, merges (tutorial §4.1);
- `plugin_model`: a subclassed model of an enabled server-side plugin (tutorial §4.2);
- `keras_json`: the config `model.to_json()` writes; `yaml`: the same config as YAML (tutorial §5.2).
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Discriminator, Field, StrictInt, Tag, TypeAdapter, model_validator

from app.specchecker.keras_names import function_name
from app.specchecker.safety import Catalog, did_you_mean

NAME = r"^[A-Za-z0-9_.-]{1,200}$"
DTYPE = r"^[a-z0-9_]{1,20}$"
# JSON or YAML architectures larger than this are not model configs (ResNet50's JSON is 170 KB).
MAX_ARCHITECTURE_BYTES = 16 * 1024 * 1024
# A dimension is a whole number: `true` or 3.0 is not one (pydantic would coerce them).
Dimension = StrictInt

# The tutorial writes activations as functions (`tf.nn.relu`); Keras configs name them as strings.
# Argument-name suffixes that take a serialized Keras object, and the module it comes from.
_OBJECT_ARGUMENTS = {
    "_initializer": "keras.initializers",
    "_regularizer": "keras.regularizers",
    "_constraint": "keras.constraints",
}
# The tutorial's `keras.regularizers.l2(0.01)` / `l1(0.01)` written as a string.
_REGULARIZER_CALL = re.compile(r"^\s*(l1|l2)\s*\(\s*([0-9.eE+-]+)\s*\)\s*$")
# A functional spec names a tensor by the layer call that made it; `lstm[1]` is that call's second output.
_TENSOR_REFERENCE = re.compile(r"^([A-Za-z0-9_.-]{1,200})(?:\[(\d{1,4})\])?$")
# Top-level classes that make a model (plugin models are added from the catalog).
MODEL_CLASSES = frozenset({"Sequential", "Functional"})


class SpecError(ValueError):
    """A spec that cannot be translated; `field` names where, the message says what to do."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message


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
EXAMPLE_FUNCTIONAL = {
    "type": "functional",
    "name": "two_towers",
    "inputs": [{"name": "left", "shape": [72]}, {"name": "right", "shape": [72]}],
    "layers": [
        {"name": "shared", "class_name": "Dense", "units": 32, "activation": "relu", "inputs": "left"},
        {"name": "shared_right", "call": "shared", "inputs": "right"},
        {"name": "merged", "class_name": "Concatenate", "inputs": ["shared", "shared_right"]},
        {"name": "hidden", "class_name": "Dense", "units": 64, "activation": "relu", "inputs": "merged"},
        {"name": "residual", "class_name": "Add", "inputs": ["hidden", "merged"]},
        {"name": "label", "class_name": "Dense", "units": 10, "activation": "softmax", "inputs": "residual"},
        {"name": "score", "class_name": "Dense", "units": 1, "inputs": "residual"},
    ],
    "outputs": ["label", "score"],
}


class LayerSpec(BaseModel):
    """One layer: `class_name` plus its Keras arguments, either flat or under `config`."""

    model_config = ConfigDict(extra="allow")

    class_name: str = Field(min_length=1, max_length=200, examples=["Dense"])
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
    name: str = Field(default="sequential", pattern=NAME)
    # Without it the model is built when the data is known, as Keras does.
    input_shape: list[Dimension | None] | None = Field(default=None, max_length=8)
    # `int32` for a model that starts with an Embedding.
    input_dtype: str | None = Field(default=None, pattern=DTYPE)
    layers: list[LayerSpec] = Field(min_length=1, max_length=1000)

    @model_validator(mode="after")
    def _positive_dims(self) -> SequentialSpec:
        if self.input_shape is not None and any(d is not None and d <= 0 for d in self.input_shape):
            raise ValueError("input_shape dimensions must be positive integers (or null for any size)")
        return self


class InputSpec(BaseModel):
    """`keras.Input(shape=..., name=..., dtype=...)`."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME)
    shape: list[Dimension | None] = Field(max_length=8)
    dtype: str = Field(default="float32", pattern=DTYPE)
    batch_size: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _positive_dims(self) -> InputSpec:
        if any(d is not None and d <= 0 for d in self.shape):
            raise ValueError("shape dimensions must be positive integers (or null for any size)")
        return self


TensorNames = str | list[str]


class CallSpec(BaseModel):
    """One layer call of a functional graph: a new layer (`class_name` and its arguments) or another
    call of an earlier layer (`call`: its name; a shared layer), on the tensors named in `inputs`.

    `inputs` is one tensor name (`layer(x)`), a list (`Concatenate()([a, b])`), or a dict of call
    arguments (`MultiHeadAttention()(query=q, value=v)`); `lstm[1]` names a call's second output. The
    call's own `name` names its output (and, for a new layer, the layer)."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(pattern=NAME)
    class_name: str | None = Field(default=None, min_length=1, max_length=200)
    call: str | None = Field(default=None, pattern=NAME)
    inputs: TensorNames | dict[str, TensorNames]
    # Non-tensor call arguments, e.g. {"use_causal_mask": true}.
    call_arguments: dict[str, Any] = Field(default_factory=dict)
    config: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _one_source(self) -> CallSpec:
        if (self.class_name is None) == (self.call is None):
            raise ValueError("give either class_name (a new layer) or call (an earlier layer to call again)")
        if self.call is not None and (self.model_extra or self.config is not None):
            raise ValueError("a call of an earlier layer takes no layer arguments; they are the earlier layer's")
        return self

    def layer(self) -> LayerSpec:
        return LayerSpec(class_name=self.class_name or "", config=self.config, **(self.model_extra or {}))


class FunctionalSpec(BaseModel):
    """`keras.Model(inputs, outputs)` from a graph of layer calls (tutorial §4.1)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [EXAMPLE_FUNCTIONAL]})

    type: Literal["functional"]
    name: str = Field(default="functional", pattern=NAME)
    inputs: list[InputSpec] = Field(min_length=1, max_length=100)
    layers: list[CallSpec] = Field(min_length=1, max_length=2000)
    outputs: TensorNames


class PluginModelSpec(BaseModel):
    """A subclassed model of an enabled plugin (tutorial §4.2), e.g. `MyModel(num_classes=10)`."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"type": "plugin_model", "class_name": "MyModel", "config": {"num_classes": 10}, "input_shape": [72]}]})

    type: Literal["plugin_model"]
    class_name: str = Field(min_length=1, max_length=200)
    config: dict[str, Any] = Field(default_factory=dict)
    input_shape: list[Dimension | None] | None = Field(default=None, max_length=8)


class KerasJsonSpec(BaseModel):
    """The config `model.to_json()` writes, as an object or as the JSON text (tutorial §5.2).

    A request body that is that config itself (`class_name` at the top) is read the same way."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["keras_json"]
    architecture: dict[str, Any] | str
    name: str | None = Field(default=None, pattern=NAME)


class YamlSpec(BaseModel):
    """The same config as YAML (Keras removed `to_yaml`; kerasd reads and writes it)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["yaml"]
    yaml: str = Field(max_length=MAX_ARCHITECTURE_BYTES)
    name: str | None = Field(default=None, pattern=NAME)


def _form_of(value: Any) -> str | None:
    if isinstance(value, dict):
        return value.get("type", "sequential")
    return getattr(value, "type", None)


ModelSpecForm = Annotated[
    Annotated[SequentialSpec, Tag("sequential")]
    | Annotated[FunctionalSpec, Tag("functional")]
    | Annotated[PluginModelSpec, Tag("plugin_model")]
    | Annotated[KerasJsonSpec, Tag("keras_json")]
    | Annotated[YamlSpec, Tag("yaml")],
    Discriminator(_form_of, custom_error_type="invalid_spec_type",
                  custom_error_message="type must be one of sequential, functional, plugin_model, keras_json, "
                                       "yaml (or send the config model.to_json() writes)"),
]
MODEL_SPEC_ADAPTER: TypeAdapter[Any] = TypeAdapter(ModelSpecForm)
SPEC_TAGS = ("sequential", "functional", "plugin_model", "keras_json", "yaml")


def parse_model_spec(body: Any) -> Any:
    """A JSON body as one of the spec forms (pydantic.ValidationError when it is none of them)."""
    if isinstance(body, dict) and "type" not in body and "class_name" in body:
        body = {"type": "keras_json", "architecture": body}
    return MODEL_SPEC_ADAPTER.validate_python(body)


# --- layer arguments ------------------------------------------------------------------------------

def _strip_module(value: str, module: str) -> str:
    for prefix in (f"tf.{module}.", f"{module}."):
        if value.startswith(prefix):
            return value[len(prefix):]
    return value


def _object_argument(value: Any, module: str) -> Any:
    if isinstance(value, str):
        value = _strip_module(value, module)
        call = _REGULARIZER_CALL.match(value)
        if call and module == "keras.regularizers":
            kind, amount = call.groups()
            return {"module": module, "class_name": kind.upper(), "config": {kind: float(amount)},
                    "registered_name": None}
        return value
    if isinstance(value, dict) and "class_name" in value:
        return {"module": module, "registered_name": None, "config": {}, **value}
    return value


def _activation(value: str, catalog: Catalog | None, field: str) -> str:
    name = function_name(value)
    known = catalog.kind("activations") if catalog is not None else frozenset()
    if known and name not in known:
        raise SpecError(field, f"unknown activation {value!r}{did_you_mean(name, known)}")
    return name


def _is_layer_object(value: Any, catalog: Catalog | None) -> bool:
    if not (isinstance(value, dict) and isinstance(value.get("class_name"), str)):
        return False
    if value.get("module") not in (None, "keras.layers") or catalog is None:
        return value.get("module") == "keras.layers"
    name = value["class_name"]
    return name in catalog.kind("layers") or catalog.plugin(name) is not None


def _argument(key: str, value: Any, catalog: Catalog | None, field: str) -> Any:
    if (key == "activation" or key.endswith("_activation")) and isinstance(value, str):
        return _activation(value, catalog, field)
    for suffix, module in _OBJECT_ARGUMENTS.items():
        if key.endswith(suffix):
            return _object_argument(value, module)
    # Wrappers and RNNs take layers as arguments (Bidirectional's `layer`, RNN's `cell`).
    if _is_layer_object(value, catalog):
        return layer_config(_nested_layer(value, field), catalog, field)
    if isinstance(value, list) and value and all(_is_layer_object(v, catalog) for v in value):
        return [layer_config(_nested_layer(v, f"{field}[{i}]"), catalog, f"{field}[{i}]")
                for i, v in enumerate(value)]
    return value


def _nested_layer(value: dict[str, Any], field: str) -> LayerSpec:
    if "config" in value and isinstance(value["config"], dict):
        return LayerSpec(class_name=value["class_name"], config=value["config"])
    arguments = {k: v for k, v in value.items() if k not in ("class_name", "module", "registered_name")}
    return LayerSpec(class_name=value["class_name"], **arguments)


def layer_config(layer: LayerSpec, catalog: Catalog | None = None, field: str = "") -> dict[str, Any]:
    """A layer as Keras serializes it: built-ins under `keras.layers`, plugin layers under their module."""
    try:
        arguments = layer.arguments()
    except ValueError as exc:
        raise SpecError(field, str(exc)) from None
    arguments = {key: _argument(key, value, catalog, f"{field}.{key}" if field else key)
                 for key, value in arguments.items()}
    plugin = catalog.plugin(layer.class_name) if catalog is not None else None
    if plugin is not None:
        return {"module": plugin["module"], "class_name": plugin["class_name"], "config": arguments,
                "registered_name": plugin["registered_name"]}
    return {"module": "keras.layers", "class_name": layer.class_name, "config": arguments,
            "registered_name": None}


# --- whole models ---------------------------------------------------------------------------------

def _input_layer(batch_shape: list[int | None], dtype: str, name: str | None = None) -> dict[str, Any]:
    config: dict[str, Any] = {"batch_shape": batch_shape, "dtype": dtype}
    if name is not None:
        config["name"] = name
    return {"module": "keras.layers", "class_name": "InputLayer", "config": config, "registered_name": None}


def sequential_config(spec: SequentialSpec, catalog: Catalog | None = None) -> dict[str, Any]:
    """The spec as the config `keras.Sequential.to_json()` would have written for it."""
    layers = []
    if spec.input_shape is not None:
        layers.append(_input_layer([None, *spec.input_shape], spec.input_dtype or "float32"))
    layers.extend(layer_config(layer, catalog, f"layers[{i}]") for i, layer in enumerate(spec.layers))
    return {"module": "keras", "class_name": "Sequential", "registered_name": None,
            "config": {"name": spec.name, "layers": layers}}


def _tensor(reference: str, known: dict[str, tuple[str, int]], field: str) -> dict[str, Any]:
    match = _TENSOR_REFERENCE.match(reference) if isinstance(reference, str) else None
    if match is None or match.group(1) not in known:
        name = match.group(1) if match else str(reference)
        raise SpecError(field, f"{reference!r} is not an input or the output of an earlier layer call"
                        f"{did_you_mean(name, known)}; a call may only use tensors made before it")
    layer, node = known[match.group(1)]
    # Keras rebuilds each call from `keras_history`; the placeholder's own shape is never used.
    return {"class_name": "__keras_tensor__",
            "config": {"shape": [], "dtype": "float32", "keras_history": [layer, node, int(match.group(2) or 0)]}}


def _tensors(value: Any, known: dict[str, tuple[str, int]], field: str) -> Any:
    if isinstance(value, list):
        return [_tensor(v, known, f"{field}[{i}]") for i, v in enumerate(value)]
    return _tensor(value, known, field)


def _history(reference: str, known: dict[str, tuple[str, int]], field: str) -> list[Any]:
    return _tensor(reference, known, field)["config"]["keras_history"]


def functional_config(spec: FunctionalSpec, catalog: Catalog | None = None) -> dict[str, Any]:
    """The graph as the config a functional `keras.Model.to_json()` would have written for it."""
    known: dict[str, tuple[str, int]] = {}  # tensor name -> (layer, call index)
    entries: dict[str, dict[str, Any]] = {}  # layer name -> its entry, to add calls of a shared layer
    layers: list[dict[str, Any]] = []
    for i, item in enumerate(spec.inputs):
        if item.name in known:
            raise SpecError(f"inputs[{i}].name", f"{item.name!r} is used twice; every name must be unique")
        entry = {**_input_layer([item.batch_size, *item.shape], item.dtype, item.name), "name": item.name,
                 "inbound_nodes": []}
        layers.append(entry)
        known[item.name] = (item.name, 0)
    for i, call in enumerate(spec.layers):
        field = f"layers[{i}]"
        if call.name in known:
            raise SpecError(f"{field}.name", f"{call.name!r} is used twice; every input and call needs its own "
                            "name (call a shared layer again with 'call')")
        if call.call is not None:
            entry = entries.get(call.call)
            if entry is None:
                raise SpecError(f"{field}.call", f"{call.call!r} is not an earlier layer"
                                f"{did_you_mean(call.call, entries)}")
        else:
            entry = layer_config(call.layer(), catalog, field)
            entry["config"]["name"] = call.name
            entry.update(name=call.name, inbound_nodes=[])
            entries[call.name] = entry
            layers.append(entry)
        if isinstance(call.inputs, dict):
            args: list[Any] = []
            kwargs = {key: _tensors(value, known, f"{field}.inputs.{key}") for key, value in call.inputs.items()}
        else:
            args, kwargs = [_tensors(call.inputs, known, f"{field}.inputs")], {}
        entry["inbound_nodes"].append({"args": args, "kwargs": {**call.call_arguments, **kwargs}})
        known[call.name] = (entry["name"], len(entry["inbound_nodes"]) - 1)
    outputs = spec.outputs if isinstance(spec.outputs, list) else [spec.outputs]
    return {"module": "keras.src.models.functional", "class_name": "Functional", "registered_name": "Functional",
            "config": {"name": spec.name, "trainable": True, "layers": layers,
                       "input_layers": [[item.name, 0, 0] for item in spec.inputs],
                       "output_layers": [_history(o, known, f"outputs[{i}]") for i, o in enumerate(outputs)]}}


def plugin_model_config(spec: PluginModelSpec, catalog: Catalog) -> dict[str, Any]:
    plugin = catalog.plugin(spec.class_name)
    if plugin is None or plugin["kind"] != "model":
        models = [p["class_name"] for p in catalog.plugins.values() if p["kind"] == "model"]
        raise SpecError("class_name", f"{spec.class_name!r} is not a model of an enabled plugin"
                        f"{did_you_mean(spec.class_name, models)}; GET /v1/plugins lists them")
    document: dict[str, Any] = {"module": plugin["module"], "class_name": plugin["class_name"],
                                "config": dict(spec.config), "registered_name": plugin["registered_name"]}
    if spec.input_shape is not None:
        document["build_config"] = {"input_shape": [None, *spec.input_shape]}
    return document


def _architecture(text: str, field: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise SpecError(field, f"the architecture is not valid JSON ({exc}); send what model.to_json() "
                        "returns") from None


def load_yaml(text: str) -> Any:
    """YAML text as plain data: no tags that construct Python objects (safe_load refuses them)."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SpecError("yaml", f"the YAML cannot be read as plain data ({str(exc).splitlines()[0]}); send "
                        "what GET /v1/models/{id}/architecture?format=yaml returns") from None
    except RecursionError:
        raise SpecError("yaml", "the YAML nests too deeply") from None


def _named(document: Any, name: str | None, field: str, catalog: Catalog | None) -> dict[str, Any]:
    if not isinstance(document, dict) or not isinstance(document.get("config"), dict) or (
            not isinstance(document.get("class_name"), str)):
        raise SpecError(field, "a model architecture is an object with class_name and config, as "
                        "model.to_json() writes it")
    plugin = catalog.plugin(document.get("registered_name") or "") if catalog is not None else None
    if document["class_name"] not in MODEL_CLASSES and not (plugin and plugin["kind"] == "model"):
        raise SpecError(f"{field}.class_name", f"the architecture's top level is {document['class_name']!r}, not "
                        "a model: send a Sequential, a Functional model or a plugin model")
    if name is not None:
        document = {**document, "config": {**document["config"], "name": name}}
    return document


def model_document(spec: Any, catalog: Catalog | None = None) -> dict[str, Any]:
    """Any spec form as the Keras config document the spec checker builds (SpecError if it cannot be)."""
    if isinstance(spec, SequentialSpec):
        return sequential_config(spec, catalog)
    if isinstance(spec, FunctionalSpec):
        return functional_config(spec, catalog)
    if isinstance(spec, PluginModelSpec):
        return plugin_model_config(spec, catalog or Catalog.from_lists({}))
    if isinstance(spec, KerasJsonSpec):
        architecture = spec.architecture
        if isinstance(architecture, str):
            architecture = _architecture(architecture, "architecture")
        return _named(architecture, spec.name, "architecture", catalog)
    if isinstance(spec, YamlSpec):
        return _named(load_yaml(spec.yaml), spec.name, "yaml", catalog)
    raise TypeError(f"not a model spec: {type(spec).__name__}")


def model_name(spec: Any, document: dict[str, Any]) -> str:
    name = document.get("config", {}).get("name") if isinstance(document.get("config"), dict) else None
    return str(name or getattr(spec, "name", None) or document.get("class_name") or "model")[:200]
