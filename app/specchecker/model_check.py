"""What the spec checker does with a model config: count, build, describe (runs in its sandboxes only).

1. The allowlist walk (app.specchecker.safety), again, inside the sandbox.
2. The parameter count before any weight is allocated: Keras traces the model in a StatelessScope, where
   layers create their variables with shapes but no memory (`initialize_variables=False`), so a model
   over KERASD_MAX_MODEL_PARAMS is refused with its exact count without allocating it.
3. The real build with `safe_mode=True`; the canonical JSON (`model.to_json()`) and a summary with shapes
   per named input and output, which the API uses to check a job's arrays without Keras.

When Keras refuses a layer's inputs, the error names the layer, its class and the input shapes it got:
the traceback's `Layer.__call__` frames say which call failed.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import keras

from app.specchecker import compat
from app.specchecker.building import catalog
from app.specchecker.name_hints import argument_hint, unknown_arguments
from app.specchecker.safety import MAX_SHAPE_ELEMENTS, check_config


class TooManyParameters(ValueError):
    def __init__(self, count: int, limit: int, how: str) -> None:
        super().__init__(f"the model has {count:,} parameters ({how}); the limit is {limit:,} "
                         "(KERASD_MAX_MODEL_PARAMS). Make it smaller.")
        self.detail = {"params": count, "limit": limit}


class ShapeTooLarge(ValueError):
    """A layer's inferred output holds more elements per sample than any shape may (safety.MAX_SHAPE_ELEMENTS):
    the config's shapes were within the limit, but Keras's inference multiplied them (RepeatVector(2**26) then
    Dense(64): 4.3e9 elements a sample from 320 parameters)."""

    def __init__(self, layer: str, shape: list[Any], elements: int) -> None:
        super().__init__(f"the layer {layer!r} outputs the shape {shape}, {elements:,} elements per sample; the "
                         f"most any layer may output is {MAX_SHAPE_ELEMENTS:,}. Make that layer or the ones "
                         "before it smaller.")
        self.detail = {"layer": layer, "shape": shape, "elements": elements, "limit": MAX_SHAPE_ELEMENTS}


class LayerFailed(ValueError):
    """Keras refused a layer call; the message names the layer and the shapes it was given."""

    def __init__(self, layer: keras.layers.Layer, shapes: list[Any], cause: BaseException) -> None:
        shown = ", ".join(_shape_text(s) for s in shapes) or "no tensors"
        super().__init__(f"layer {layer.name!r} ({type(layer).__name__}) cannot take inputs of shape {shown}: "
                         f"{type(cause).__name__}: {str(cause).strip()}")
        self.detail = {"layer": layer.name, "class_name": type(layer).__name__,
                       "input_shapes": [list(s) for s in shapes]}


class ObjectFailed(ValueError):
    """Keras could not make an object of the config (a layer's arguments are wrong); the message names
    the object and gives Keras's innermost reason, not its nested wrappers."""

    def __init__(self, config: dict[str, Any], cls: type, cause: BaseException) -> None:
        inner = config.get("config") if isinstance(config.get("config"), dict) else {}
        name = inner.get("name") or config.get("name")
        what = f"{cls.__name__} {name!r}" if name else cls.__name__
        reason = str(cause).strip().splitlines()[-1] if str(cause).strip() else type(cause).__name__
        reason = reason.rsplit("Exception encountered: ", 1)[-1]
        super().__init__(f"{what}: {reason}{argument_hint(reason, cls, inner)}")
        self.detail = {"object": name, "class_name": cls.__name__, "unknown_arguments": unknown_arguments(reason)}


class NotAModel(ValueError):
    pass


def _chain(exc: BaseException) -> list[BaseException]:
    found: list[BaseException] = []
    while exc is not None and all(exc is not seen for seen in found):
        found.append(exc)
        exc = exc.__cause__ or exc.__context__
    return found


def failed_object(exc: BaseException) -> ObjectFailed | None:
    """The innermost object Keras was deserializing when it failed, read from the tracebacks."""
    found = None
    for link in _chain(exc):
        frame_tb = link.__traceback__
        while frame_tb is not None:
            found = compat.deserializing(frame_tb.tb_frame) or found
            frame_tb = frame_tb.tb_next
    return ObjectFailed(*found, _chain(exc)[-1]) if found else None


def _shape_text(shape: Any) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")"


def fresh_session() -> None:
    """Forget earlier models (so layer names restart at `dense`) and keep Keras's tracebacks whole: the
    diagnosis reads the frames Keras would otherwise filter out. clear_session resets both."""
    keras.backend.clear_session()
    keras.config.disable_traceback_filtering()


def failed_layer(exc: BaseException) -> LayerFailed | None:
    """The outermost layer call in the traceback, with the shapes of the tensors it was given."""
    layer, shapes = None, []
    frame_tb = exc.__traceback__
    while frame_tb is not None:
        frame = frame_tb.tb_frame
        candidate = compat.called_layer(frame)
        if candidate is not None and layer in (None, candidate):
            layer = candidate
            shapes = shapes or [tuple(t.shape) for t in compat.call_tensors(frame)]
        frame_tb = frame_tb.tb_next
    return LayerFailed(layer, shapes, exc) if layer is not None else None


def exhausted(exc: BaseException) -> bool:
    """Out of memory, as Python or TensorFlow says it: the sandbox must retire, not explain a layer."""
    return type(exc).__name__ in ("MemoryError", "ResourceExhaustedError")


@contextmanager
def failures_named() -> Iterator[None]:
    """Keras failing to build or load a model: raised again as the layer or object it failed in, where the
    tracebacks say; out of memory and too deep as they are."""
    try:
        yield
    except (MemoryError, RecursionError):
        raise
    except Exception as exc:
        named = None if exhausted(exc) else failed_layer(exc) or failed_object(exc)
        if named is not None:
            raise named from exc
        raise


def deserialize(document: dict[str, Any]) -> Any:
    with failures_named():
        # A copy: Keras pops keys out of a functional config while it reads it.
        return keras.saving.deserialize_keras_object(copy.deepcopy(document), safe_mode=True)


def _uses_stateless_scope_badly(exc: BaseException) -> bool:
    return "stateless scope" in str(exc)


def count_unallocated(build: Any) -> int | None:
    """Parameters of the model `build()` makes, counted with variables that hold no memory; None if the
    model is not built (a Sequential without an input shape) or a layer cannot be traced that way."""
    fresh_session()
    try:
        with keras.StatelessScope(initialize_variables=False):
            model = build()
            return model.count_params() if getattr(model, "built", False) and model.weights is not None else None
    except ValueError as exc:
        if _uses_stateless_scope_badly(exc) or "isn't built" in str(exc):
            return None  # a layer that makes a variable from a tensor: the real build is counted instead
        raise
    finally:
        # The variables were registered to be initialized later; they never will be.
        compat.global_state().set_global_attribute("uninitialized_variables", [])
        fresh_session()


def check_budget(build: Any, max_params: int) -> None:
    count = count_unallocated(build)
    if count is not None and count > max_params:
        raise TooManyParameters(count, max_params, "counted by Keras's shape inference before any weight "
                                "was allocated")


def check_model(document: dict[str, Any], max_params: int) -> dict[str, Any]:
    """Build a model from a config: its canonical Keras JSON and summary, or the reason it cannot be."""
    check_config(document, catalog())
    # A compiled model's JSON (`model.to_json()` after compile) carries its compile_config, and Keras compiles the
    # model it reads: its optimizer makes variables that a StatelessScope refuses. Compiling adds no parameters,
    # so the count is of the model alone; the real build compiles as the JSON says.
    uncompiled = {key: value for key, value in document.items() if key != "compile_config"}
    check_budget(lambda: deserialize(uncompiled), max_params)
    return describe(deserialize(document), max_params)


def describe(model: Any, max_params: int) -> dict[str, Any]:
    if not isinstance(model, keras.Model):
        raise NotAModel(f"the config describes a {type(model).__name__}, not a model")
    if model.built and model.count_params() > max_params:
        raise TooManyParameters(model.count_params(), max_params, "counted after building")
    summary = summarize(model)
    check_layer_shapes(summary)
    return {"keras_config": json.loads(model.to_json()), "summary": summary}


def _shapes_in(value: Any) -> list[list[Any]]:
    """The shapes in a summary's output_shape: one shape, or (nested) lists of them."""
    if not isinstance(value, list):
        return []
    if all(v is None or type(v) is int for v in value):
        return [value]
    return [shape for item in value for shape in _shapes_in(item)]


def check_layer_shapes(summary: dict[str, Any]) -> None:
    """Every layer's inferred output shape, each call of a shared layer too, within the per-sample limit."""
    for row in summary["layers"]:
        for shape in _shapes_in(row.get("output_shapes") or row.get("output_shape")):
            elements = math.prod(v for v in shape if v is not None and v > 0)
            if elements > MAX_SHAPE_ELEMENTS:
                raise ShapeTooLarge(row["name"], shape, elements)


# --- the summary -----------------------------------------------------------------------------------

def _shape(tensor: Any) -> list[int | None] | None:
    try:
        return list(tensor.shape)
    except (AttributeError, TypeError, ValueError):
        return None


def _tensor_entry(name: str, tensor: Any) -> dict[str, Any]:
    return {"name": name, "shape": _shape(tensor), "dtype": str(getattr(tensor, "dtype", "float32"))}


def _one_or_many(shapes: list[Any]) -> Any:
    return shapes[0] if len(shapes) == 1 else shapes


def _layer_row(layer: keras.layers.Layer, graph: set[str] | None) -> dict[str, Any]:
    nodes = compat.layer_calls(layer, graph)
    calls = [_one_or_many([_shape(t) for t in node.output_tensors]) for node in nodes]
    row: dict[str, Any] = {
        "name": layer.name,
        "class_name": type(layer).__name__,
        "output_shape": calls[0] if calls else None,
        "params": layer.count_params() if layer.built else None,
    }
    inbound = sorted({parent.operation.name for node in nodes for parent in node.parent_nodes})
    if inbound:
        row["inbound"] = inbound
    if len(calls) > 1:  # a shared layer: one output per call
        row["calls"] = len(calls)
        row["output_shapes"] = calls
    return row


def _layer_name(tensor: Any) -> str:
    """The layer that made a tensor: an input's InputLayer, an output's last layer (Keras names a
    model's outputs this way: `output_names`, the keys of per-output losses)."""
    layer = compat.tensor_layer(tensor)
    return layer.name if layer is not None else str(getattr(tensor, "name", "output"))


def _inputs_and_outputs(model: keras.Model) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    graph = compat.functional_graph(model)
    if getattr(graph, "inputs", None) is not None and getattr(graph, "outputs", None) is not None:
        outputs = [_tensor_entry(_layer_name(t), t) for t in graph.outputs]
        # A model built with a dict of outputs takes targets, losses and metrics by that dict's keys, not by the
        # output layers' names (Keras refuses those): each output keeps its key.
        structure = getattr(model, "output", None)
        if isinstance(structure, dict):
            key_of = {id(tensor): key for key, tensor in structure.items()}
            for entry, tensor in zip(outputs, graph.outputs, strict=True):
                if id(tensor) in key_of:
                    entry["key"] = str(key_of[id(tensor)])
        return [_tensor_entry(_layer_name(t), t) for t in graph.inputs], outputs
    # A subclassed (plugin) model has no graph: its build shape and Keras's symbolic call stand in.
    input_shape = (model.get_build_config() or {}).get("input_shape")
    if not isinstance(input_shape, list | tuple):
        return [], []
    spec = keras.KerasTensor(tuple(input_shape))
    output = model.compute_output_spec(spec)
    outputs = output if isinstance(output, list | tuple) else [output]
    return ([_tensor_entry("input", spec)],
            [_tensor_entry(model.name if len(outputs) == 1 else f"output_{i}", t) for i, t in enumerate(outputs)])


def summarize(model: keras.Model) -> dict[str, Any]:
    """What `model.summary()` prints, as data, plus the shape of every named input and output."""
    built = bool(model.built)
    summary: dict[str, Any] = {"built": built, "class_name": type(model).__name__, "name": model.name,
                               "layers": [_layer_row(layer, compat.graph_node_keys(model)) for layer in model.layers
                                          if not isinstance(layer, keras.layers.InputLayer)]}
    if not built:
        summary.update({"total_params": None, "trainable_params": None, "non_trainable_params": None,
                        "inputs": None, "outputs": None, "input_shape": None, "output_shape": None,
                        "note": "no input shape: the model is built when it first sees data"})
        return summary
    inputs, outputs = _inputs_and_outputs(model)
    trainable = sum(math.prod(w.shape) for w in model.trainable_weights)
    total = model.count_params()
    summary.update({
        "total_params": total, "trainable_params": trainable, "non_trainable_params": total - trainable,
        "inputs": inputs, "outputs": outputs,
        "input_shape": _one_or_many([i["shape"] for i in inputs]) if inputs else None,
        "output_shape": _one_or_many([o["shape"] for o in outputs]) if outputs else None,
    })
    return summary
