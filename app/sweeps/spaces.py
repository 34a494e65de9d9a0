"""Declarative spaces: paths into the base job (`compile.optimizer.config.learning_rate`, `fit.batch_size`) and into
its model's sequential or functional spec (`model.layers[0].units`, or by the layer's name,
`model.layers[name=hidden].units`), each checked to exist and resolved to where its value goes in a trial's job
contract or Keras config (app/core/sweep_steps.py puts it there)."""

from __future__ import annotations

import copy
import re
from typing import Any

from app.core.errors import Problem
from app.models.keras_documents import SpecError, model_document
from app.models.specs import NAME, parse_model_spec
from app.specchecker.safety import Catalog, did_you_mean
from app.sweeps.schemas import Dimension

# A name (after a dot, but first), a list index `[0]`, or a layer by its name `[name=hidden]` (a model spec's names
# may hold dots, so the path is read token by token, not split at dots).
_TOKEN = re.compile(r"(?:^|\.)([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]|\[name=(" + NAME.strip("^$") + r")\]")
ROOTS = ("compile", "fit", "model")
# fit's data: a sweep searches hyperparameters, not the data it trains on.
NOT_SWEPT = {"x", "y", "sample_weight", "validation_data", "verbose"}
# What wires a functional graph together rather than configures a layer.
GRAPH_FIELDS = {"name", "class_name", "call", "inputs", "call_arguments"}


class LayerName(str):
    """`[name=…]` in a path: the layer of the spec's `layers` with that name."""


def parse(path: str) -> list[str | int]:
    """`model.layers[0].units` -> ['model', 'layers', 0, 'units'] (`[name=x]` -> LayerName('x')); a 422 naming the
    path for anything else."""
    keys: list[str | int] = []
    position = 0
    while position < len(path) and not path.startswith("."):
        match = _TOKEN.match(path, position)
        if match is None:
            break
        name, index, layer = match.groups()
        keys.append(name if name is not None else int(index) if index is not None else LayerName(layer))
        position = match.end()
    if position != len(path) or not keys or not isinstance(keys[0], str) or isinstance(keys[0], LayerName):
        raise Problem(422, "Invalid Space Path", f"space: {path!r} is not a path: write names joined by dots, "
                      "with [i] after a list, or [name=…] for a model's layer by name (model.layers[0].units, "
                      "model.layers[name=hidden].units).", field=f"space.{path}")
    if keys[0] not in ROOTS:
        raise Problem(422, "Invalid Space Path", f"space: {path!r} starts with {keys[0]!r}; a path goes into the "
                      "base job's compile or fit arguments, or its model (compile.…, fit.…, model.…).",
                      field=f"space.{path}")
    if len(keys) < 2:
        raise Problem(422, "Invalid Space Path", f"space: {path!r} names a whole section; name a value in it.",
                      field=f"space.{path}")
    return keys


def _layer_name(layer: Any) -> Any:
    if not isinstance(layer, dict):
        return None
    return layer.get("name") or (layer.get("config") or {}).get("name")


def _index(document: Any, key: str | int) -> str | int:
    """A key of `document`: `[name=…]` becomes the index of the layer of that name; KeyError when there is none."""
    if not isinstance(key, LayerName):
        return key
    if isinstance(document, list):
        for index, layer in enumerate(document):
            if _layer_name(layer) == key:
                return index
    raise KeyError(key)


def get_at(document: Any, at: list[str | int]) -> Any:
    """The value at the path; KeyError when it is not there."""
    for named in at:
        key = _index(document, named)
        if isinstance(key, int):
            if not isinstance(document, list) or key >= len(document):
                raise KeyError(key)
        elif not isinstance(document, dict) or key not in document:
            raise KeyError(key)
        document = document[key]
    return document


def set_at(document: Any, at: list[str | int], value: Any) -> None:
    for key in at[:-1]:
        document = document[_index(document, key)]
    document[_index(document, at[-1])] = value


def _missing(path: str, where: str) -> Problem:
    return Problem(422, "Unknown Space Path", f"space: {path!r} is not in {where}: every path must name a value "
                   "the base job already has (give it a starting value there).", field=f"space.{path}")


def corners(space: dict[str, Dimension]) -> list[dict[str, Any]]:
    """Two points the base job is checked with at submit: every dimension at its low end, then at its high end
    (a choice's first and last value)."""
    low, high = {}, {}
    for path, dimension in space.items():
        kind = dimension.kind
        if kind == "choice":
            low[path], high[path] = dimension.choice[0], dimension.choice[-1]
            continue
        start, end = getattr(dimension, kind)
        if dimension.step:
            end = start + dimension.step * int((end - start) // dimension.step)
        low[path], high[path] = start, end
    return [low, high] if low != high else [low]


def _layer_at(model_spec: dict[str, Any], keys: list[str | int], path: str) -> list[str | int]:
    """Where `model.layers[i].arg…` (or `[name=…]`) lands in the sequential or functional spec's Keras config
    (model_document)."""
    form = model_spec.get("type", "sequential")
    if form not in ("sequential", "functional") or "layers" not in model_spec:
        raise Problem(422, "Unsupported Space Path", f"space: {path!r}: model paths go into sequential or functional "
                      "specs (model.layers[i].argument, model.layers[name=…].argument); this model is not one. "
                      "Sweep compile and fit paths, or create the model from such a spec.", field=f"space.{path}")
    if len(keys) < 3 or keys[0] != "layers" or not isinstance(keys[1], int | LayerName):
        raise Problem(422, "Unsupported Space Path", f"space: {path!r}: a model path names a layer's argument, "
                      "as model.layers[0].units or model.layers[name=hidden].units.", field=f"space.{path}")
    layers = model_spec["layers"]
    layer = int(_index(layers, keys[1]))
    tail = keys[2:]
    if form == "functional":
        called = layers[layer].get("call")
        if called is not None:
            raise Problem(422, "Unsupported Space Path", f"space: {path!r}: layer {layers[layer].get('name')!r} "
                          f"calls the shared layer {called!r} again and has no arguments of its own; address "
                          f"model.layers[name={called}].", field=f"space.{path}")
        if tail[0] in GRAPH_FIELDS:
            raise Problem(422, "Unsupported Space Path", f"space: {path!r}: {tail[0]!r} wires the model's graph; a "
                          "sweep changes a layer's arguments (units, rate, activation, ...).", field=f"space.{path}")
        # Keras's config lists the inputs first, then each new layer once (a shared layer's calls are its nodes).
        position = len(model_spec.get("inputs") or []) + sum(1 for item in layers[:layer] if item.get("call") is None)
    else:
        position = layer + (1 if model_spec.get("input_shape") is not None else 0)
    # A layer's arguments are flat in the spec or under its `config`; in Keras's config always under `config`.
    if tail[0] != "config":
        tail = ["config", *tail]
    return ["config", "layers", position, *tail]


def _missing_layer(path: str, model_spec: dict[str, Any], name: str) -> Problem:
    names = [found for found in map(_layer_name, model_spec.get("layers") or []) if isinstance(found, str)]
    return Problem(422, "Unknown Space Path", f"space: {path!r}: the base job's model has no layer named {name!r}"
                   f"{did_you_mean(name, names)}; its layers are {names}.", field=f"space.{path}")


def _model_document(model_spec: dict[str, Any], catalog: Catalog, path: str) -> dict[str, Any]:
    try:
        return model_document(parse_model_spec(model_spec), catalog)
    except (SpecError, ValueError) as exc:
        raise Problem(422, "Invalid Sweep Point", f"space: {path!r}: the model spec with this value is not valid: "
                      f"{exc}", field=f"space.{path}") from None


def resolve(space: dict[str, Dimension], *, job: dict[str, Any], template: dict[str, Any],
            model_spec: dict[str, Any] | None, catalog: Catalog) -> tuple[list[dict[str, Any]], dict | None]:
    """The plan's dimensions (path, kind, bounds, and where the value goes) and the model's Keras config that model
    paths change (None without model paths). `job` is the base job with its defaults, `template` its contract."""
    dimensions = []
    model_template = None
    for path, dimension in space.items():
        keys = parse(path)
        root, rest = keys[0], keys[1:]
        entry: dict[str, Any] = {"path": path, "kind": dimension.kind, "step": dimension.step}
        if dimension.kind == "choice":
            entry["choices"] = dimension.choice
        else:
            entry["low"], entry["high"] = getattr(dimension, dimension.kind)
        if root == "model":
            if model_spec is None:
                raise Problem(422, "Unsupported Space Path", f"space: {path!r}: the base job's model was uploaded "
                              "as a file, which has no spec to change; sweep compile and fit paths.",
                              field=f"space.{path}")
            try:
                get_at(model_spec, rest)
            except KeyError:
                named = next((key for key in rest if isinstance(key, LayerName)), None)
                if named is not None and isinstance(model_spec.get("layers"), list):
                    try:
                        _index(model_spec["layers"], named)
                    except KeyError:
                        raise _missing_layer(path, model_spec, named) from None
                raise _missing(path, "the base job's model spec") from None
            if model_template is None:
                model_template = _model_document(model_spec, catalog, path)
            at = _layer_at(model_spec, rest, path)
            try:
                get_at(model_template, at)
            except KeyError:
                raise _missing(path, "the model's Keras config") from None
            entry.update(target="model", at=at, translate=_translations(dimension, model_spec, rest, at, catalog,
                                                                          path))
        else:
            if root == "fit" and rest[0] in NOT_SWEPT:
                raise Problem(422, "Unsupported Space Path", f"space: {path!r}: a sweep searches hyperparameters; "
                              f"fit.{rest[0]} is data (or output) and cannot be swept.", field=f"space.{path}")
            try:
                get_at(job, keys)
            except KeyError:
                raise _missing(path, "the base job") from None
            at = ["compile", *rest] if root == "compile" else ["arguments", *rest]
            try:
                get_at(template, at)
            except KeyError:
                raise _missing(path, "the base job as the worker runs it") from None
            entry.update(target="contract", at=at, user_at=keys)
        dimensions.append(entry)
    return dimensions, model_template


def _translations(dimension: Dimension, model_spec: dict[str, Any], rest: list[str | int], at: list[str | int],
                  catalog: Catalog, path: str) -> dict[str, Any] | None:
    """A spec's value as its Keras config holds it (an activation's name, ...), per choice; None where each value
    goes in as it is. A range on an argument the config rewrites is refused."""
    values = dimension.choice if dimension.kind == "choice" else list(getattr(dimension, dimension.kind))
    found = {}
    for value in values:
        changed = copy.deepcopy(model_spec)
        set_at(changed, rest, value)
        found[str(value)] = get_at(_model_document(changed, catalog, path), at)
    if all(found[str(value)] == value for value in values):
        return None
    if dimension.kind != "choice":
        raise Problem(422, "Unsupported Space Path", f"space: {path!r}: Keras's config rewrites this argument's "
                      "values, so it takes a choice of values, not a range.", field=f"space.{path}")
    return found
