"""Model specs translated into the Keras config documents the spec checker builds.

Pure Python: the translation only shapes dictionaries the way Keras's serializer writes them; building
and checking a model happens in the spec checker (app.specchecker.pool), never in the API process.
"""

from __future__ import annotations

import json
import re
from typing import Any

from app.models.specs import FunctionalSpec, KerasJsonSpec, LayerSpec, PluginModelSpec, SequentialSpec, YamlSpec
from app.models.yaml_parser import parse
from app.specchecker.keras_names import function_name
from app.specchecker.safety import Catalog, check_config, did_you_mean

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
        config = {"module": plugin["module"], "class_name": plugin["class_name"], "config": arguments,
                  "registered_name": plugin["registered_name"]}
    else:
        config = {"module": "keras.layers", "class_name": layer.class_name, "config": arguments,
                  "registered_name": None}
    if catalog is not None:
        # The allowlist walk at the user's own fields (`layers[0].class_name`, `layers[2].kernel_initializer`): the
        # whole document's walk would name them by the config's index, which counts the InputLayer it adds.
        check_config({**config, "config": {}}, catalog, path=field)
        for key, value in arguments.items():
            check_config(value, catalog, path=f"{field}.{key}" if field else key)
    return config


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
    # The module `model.to_json()` writes for a functional model, Keras's private one: a name in the document that
    # Keras's deserializer reads (app/specchecker/safety.py allows exactly it), not an import of ours.
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
    """YAML text as plain data: no tags that construct Python objects, no aliases (app/models/yaml_parser.py)."""
    ok, value = parse(text)
    if not ok:
        raise SpecError("yaml", value)
    return value


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
        parsed = spec.parsed()
        if parsed is None:
            parsed = load_yaml(spec.yaml)
        return _named(parsed, spec.name, "yaml", catalog)
    raise TypeError(f"not a model spec: {type(spec).__name__}")


def model_name(spec: Any, document: dict[str, Any]) -> str:
    name = document.get("config", {}).get("name") if isinstance(document.get("config"), dict) else None
    return str(name or getattr(spec, "name", None) or document.get("class_name") or "model")[:200]
