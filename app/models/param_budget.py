"""A lower bound on a model's parameters from its Keras config alone, in pure Python (DESIGN.md §3).

The API refuses an absurd model (Dense(10**6) on 10**6 inputs, an Embedding of 10**10 rows) from the
config, before the spec checker is asked to build anything. The bound is generic over the config format:
it walks Sequential and Functional configs (nested ones too, and wrappers such as Bidirectional), reads
each layer's input width from the `build_config` Keras writes, or from the layer before it in a
Sequential, and applies the weight formula of the layers that dominate size. Layers it has no formula
for count as zero, so the bound never overestimates; the exact count comes from the spec checker, which
traces the model with Keras's own shape inference and counts the weights before allocating any.
"""

from __future__ import annotations

import math
import re
from typing import Any

# Layers whose output has the width of their input, so a Sequential chain keeps its width through them.
_SAME_WIDTH = frozenset({
    "Activation", "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "AlphaDropout",
    "GaussianDropout", "GaussianNoise", "BatchNormalization", "LayerNormalization", "GroupNormalization",
    "UnitNormalization", "ReLU", "LeakyReLU", "PReLU", "ELU", "Softmax", "ActivityRegularization", "Masking",
    "Identity", "Rescaling", "Normalization",
})
_CONV = re.compile(r"^(?:Separable|Depthwise)?Conv([123])D(?:Transpose)?$")
_RNN_GATES = {"SimpleRNN": 1, "GRU": 3, "LSTM": 4}


def _int(value: Any) -> int | None:
    return value if type(value) is int and value > 0 else None


def _last_dim(shape: Any) -> int | None:
    """The last dimension of a shape, or of the first shape of several ([[None, 72], [None, 8]] → 72)."""
    if isinstance(shape, dict):
        shape = next(iter(shape.values()), None)
    if isinstance(shape, list) and shape and isinstance(shape[0], list | dict):
        return _last_dim(shape[0])
    if isinstance(shape, list) and shape:
        return _int(shape[-1])
    return None


def _input_width(layer: dict[str, Any], width: int | None) -> int | None:
    """The size of the axis the layer's weights are sized by: the last one, or the first after the batch
    for channels_first convolutions. Unknown (None) where the config does not say."""
    build = layer.get("build_config")
    shape = build.get("input_shape") if isinstance(build, dict) else None
    if layer.get("config", {}).get("data_format") == "channels_first":
        while isinstance(shape, list) and shape and isinstance(shape[0], list | dict):
            shape = shape[0]
        return _int(shape[1]) if isinstance(shape, list) and len(shape) > 1 else None
    return _last_dim(shape) or width


def _kernel(value: Any, rank: int) -> int:
    if isinstance(value, list) and value and all(_int(v) for v in value):
        return math.prod(value)
    size = _int(value)
    return size**rank if size else 1


def _layer(layer: Any, width: int | None) -> tuple[int, int | None]:
    """(a lower bound on the layer's parameters, the width of its output or None if unknown)."""
    if not isinstance(layer, dict) or not isinstance(layer.get("config"), dict):
        return 0, None
    name = layer.get("class_name")
    config = layer["config"]
    width = _input_width(layer, width)
    known = width or 1
    if name in ("Sequential", "Functional"):
        return estimate_params(layer), None
    if name == "InputLayer":
        return 0, _last_dim(config.get("batch_shape") or config.get("batch_input_shape"))
    if name == "Dense" and _int(config.get("units")):
        units = config["units"]
        return known * units + (units if config.get("use_bias", True) else 0), units
    if name == "Embedding" and _int(config.get("input_dim")) and _int(config.get("output_dim")):
        return config["input_dim"] * config["output_dim"], config["output_dim"]
    conv = _CONV.match(name or "")
    if conv:
        kernel = _kernel(config.get("kernel_size"), int(conv.group(1)))
        multiplier = _int(config.get("depth_multiplier")) or 1
        filters = _int(config.get("filters"))
        if name.startswith("Depthwise"):
            return kernel * known * multiplier, (known * multiplier if width else None)
        if filters is None:
            return 0, None
        if name.startswith("Separable"):
            return kernel * known * multiplier + known * multiplier * filters, filters
        return kernel * max(known // (_int(config.get("groups")) or 1), 1) * filters, filters
    if name in _RNN_GATES and _int(config.get("units")):
        units = config["units"]
        return _RNN_GATES[name] * (units * (known + units) + units), units
    if name in ("Bidirectional", "TimeDistributed"):
        inner, out = _layer(config.get("layer"), width)
        if name == "Bidirectional":
            return 2 * inner, (2 * out if out and config.get("merge_mode", "concat") == "concat" else out)
        return inner, out
    last_axis = config.get("axis", -1) in (-1, [-1])
    if name == "BatchNormalization":
        return (4 * known if last_axis else 4), width
    if name == "LayerNormalization":
        return (2 * known if last_axis else 2), width
    if name == "MultiHeadAttention" and _int(config.get("num_heads")) and _int(config.get("key_dim")):
        # The query projection alone; key, value and output projections come on top.
        return config["num_heads"] * config["key_dim"] * known, width
    return 0, width if name in _SAME_WIDTH else None


def estimate_params(document: Any) -> int:
    """A lower bound on the parameters of a Keras model config (0 for anything it cannot read)."""
    if not isinstance(document, dict) or not isinstance(document.get("config"), dict):
        return 0
    config = document["config"]
    layers = config.get("layers")
    if not isinstance(layers, list):
        return 0
    total = 0
    if document.get("class_name") == "Sequential":
        width = _last_dim(config.get("build_input_shape"))
        for layer in layers:
            params, width = _layer(layer, width)
            total += params
        return total
    # A functional graph: a layer's input width comes from its build_config when Keras wrote one, else
    # from the layer whose output its first call takes.
    widths: dict[str, int | None] = {}
    for layer in layers:
        source = _first_inbound(layer)
        params, widths_out = _layer(layer, widths.get(source) if source else None)
        if isinstance(layer, dict) and isinstance(layer.get("name"), str):
            widths[layer["name"]] = widths_out
        total += params
    return total


def _first_inbound(layer: Any) -> str | None:
    """The name of the layer whose output the first call of `layer` takes (Keras 3 and legacy formats)."""
    nodes = layer.get("inbound_nodes") if isinstance(layer, dict) else None
    pending = [nodes[0]] if isinstance(nodes, list) and nodes else []
    while pending:
        node = pending.pop(0)
        if isinstance(node, dict):
            if node.get("class_name") == "__keras_tensor__":
                history = node.get("config", {}).get("keras_history")
                return history[0] if isinstance(history, list) and history else None
            pending.extend(node.values())
        elif isinstance(node, list):
            if len(node) >= 3 and isinstance(node[0], str) and type(node[1]) is int:
                return node[0]  # legacy: [layer_name, node_index, tensor_index, kwargs]
            pending.extend(node)
    return None
