"""A job's params: the flat scalar hyperparameters of its stored request, recorded at submit.

Pure Python over the request as the API stores it (app/jobs/service.py: the compile document, the fit / evaluate /
predict arguments, the declared callbacks, the resolved arrays with their shapes) and the model's stored summary,
so migration 0009 gives the jobs stored before it the same params. The names (docs/api.md):

    kind, optimizer, optimizer.<config key>, optimizer.learning_rate[.<schedule config key>]
    loss[.<output>][.<config key>], metrics[.<output>]            (names, comma-separated)
    compile.<argument>                                            (only those the job set)
    fit.<argument> | evaluate.<argument> | predict.<argument>     (batch_size, epochs, validation_split, ...)
    callbacks.<Class>.<argument>                                  (callbacks.EarlyStopping.patience)
    model.params, model.trainable_params, model.layers            (from the model's summary)
    data.rows, data.validation_rows                               (rows of x, of validation_data's x)
    seed, tuning, mixed_precision, distribution, resources.gpus

Values are str, int, float or bool; None (an argument left to Keras) is left out, as are lists and dicts that are
not Keras objects (class_weight, loss_weights, profile_batch ranges).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

Scalar = str | int | float | bool
# What a job_params row holds (VARCHAR(200) for the name and a text value); a request holds far fewer params.
MAX_NAME_CHARS = 200
MAX_TEXT_CHARS = 200
MAX_PARAMS = 500
# Keras resolves an optimizer's lowercase name to its class (keras.optimizers.get); a job that wrote "adam" and
# one that wrote {"class_name": "Adam"} ran the same optimizer, and compare as such.
OPTIMIZER_CLASSES = {name.lower(): name for name in (
    "Adadelta", "Adafactor", "Adagrad", "Adam", "AdamW", "Adamax", "Ftrl", "Lamb", "Lion", "LossScaleOptimizer",
    "Muon", "Nadam", "RMSprop", "SGD")}
# Arguments that say how much Keras prints: not a hyperparameter.
QUIET = {"verbose"}
ARRAY = "$array"


def _scalar(value: Any) -> Scalar | None:
    if isinstance(value, bool | int | str):
        return value[:MAX_TEXT_CHARS] if isinstance(value, str) else value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return None


def _keras_object(prefix: str, value: Any) -> Iterator[tuple[str, Scalar]]:
    """A name, or a serialized Keras object as its class name then its config's scalars (nested objects, such
    as a learning-rate schedule, under their own key)."""
    if isinstance(value, dict) and "class_name" in value:
        yield prefix, str(value["class_name"])[:MAX_TEXT_CHARS]
        config = value.get("config")
        for key, item in (config.items() if isinstance(config, dict) else ()):
            if key != "name":
                yield from _keras_object(f"{prefix}.{key}", item)
        return
    scalar = _scalar(value)
    if scalar is not None:
        yield prefix, scalar


def _names(value: Any) -> str | None:
    """Losses or metrics as names, comma-separated: a name, a Keras object or a list of them."""
    items = value if isinstance(value, list) else [value]
    names = [item.get("class_name") if isinstance(item, dict) else item for item in items]
    names = [str(name) for name in names if isinstance(name, str | int | float)]
    return ", ".join(names)[:MAX_TEXT_CHARS] if names else None


def _compile(document: dict[str, Any], user_set: set[str]) -> Iterator[tuple[str, Scalar]]:
    optimizer = document.get("optimizer")
    if isinstance(optimizer, str):
        yield "optimizer", OPTIMIZER_CLASSES.get(optimizer.lower(), optimizer)
    else:
        yield from _keras_object("optimizer", optimizer)
    loss = document.get("loss")
    if isinstance(loss, dict) and "class_name" not in loss:  # one per output, by name
        for output, item in loss.items():
            yield from _keras_object(f"loss.{output}", item)
    elif isinstance(loss, list):
        yield from (("loss", names) for names in [_names(loss)] if names)
    else:
        yield from _keras_object("loss", loss)
    for argument in ("metrics", "weighted_metrics"):
        value = document.get(argument)
        if isinstance(value, dict):
            for output, item in value.items():
                yield from ((f"{argument}.{output}", names) for names in [_names(item)] if names)
        elif value:
            yield from ((argument, names) for names in [_names(value)] if names)
    for argument in ("jit_compile", "steps_per_execution", "run_eagerly"):
        if argument in user_set and _scalar(document.get(argument)) is not None:
            yield f"compile.{argument}", document[argument]


def _rows(structure: Any) -> int | None:
    """The first dimension of the first array in a resolved input (an array, list, dict, or pipeline)."""
    if isinstance(structure, dict):
        if ARRAY in structure:
            shape = structure[ARRAY].get("shape") or []
            return shape[0] if shape and isinstance(shape[0], int) else None
        for key in ("pipeline", "x", *structure):
            if key in structure:
                found = _rows(structure[key])
                if found is not None:
                    return found
    elif isinstance(structure, list):
        for item in structure:
            found = _rows(item)
            if found is not None:
                return found
    return None


def _pairs(request: dict[str, Any], summary: dict[str, Any]) -> Iterator[tuple[str, Scalar]]:
    kind = request.get("kind", "fit")
    yield "kind", kind
    if request.get("compile"):
        yield from _compile(request["compile"], set((request.get("tuning") or {}).get("user_set") or ()))
    for argument, value in (request.get("arguments") or {}).items():
        scalar = _scalar(value)
        if scalar is not None and argument not in QUIET:
            yield f"{kind}.{argument}", scalar
    seen: dict[str, int] = {}
    for callback in request.get("callbacks") or []:
        name = str(callback.get("class_name"))
        seen[name] = seen.get(name, 0) + 1
        prefix = f"callbacks.{name}" if seen[name] == 1 else f"callbacks.{name}[{seen[name] - 1}]"
        for argument, value in (callback.get("config") or {}).items():
            if argument not in QUIET:
                yield from _keras_object(f"{prefix}.{argument}", value)
    for key, name in (("total_params", "model.params"), ("trainable_params", "model.trainable_params")):
        if isinstance(summary.get(key), int):
            yield name, summary[key]
    if isinstance(summary.get("layers"), list):
        yield "model.layers", len(summary["layers"])
    data = request.get("data") or {}
    for key, name in (("x", "data.rows"), ("validation_data", "data.validation_rows")):
        rows = _rows(data.get(key))
        if rows is not None:
            yield name, rows
    for key in ("seed", "mixed_precision", "distribution"):
        if _scalar(request.get(key)) is not None:
            yield key, request[key]
    if isinstance(request.get("tuning"), dict) and "enabled" in request["tuning"]:
        yield "tuning", bool(request["tuning"]["enabled"])
    gpus = ((request.get("submitted") or {}).get("resources") or {}).get("gpus", 0)
    if isinstance(gpus, int):
        yield "resources.gpus", gpus


def params_of(request: dict[str, Any], summary: dict[str, Any] | None) -> dict[str, Scalar]:
    """The job's params (first value kept for a name given twice), at most MAX_PARAMS of them."""
    params: dict[str, Scalar] = {}
    for name, value in _pairs(request, summary or {}):
        if len(name) <= MAX_NAME_CHARS and name not in params:
            params[name] = value
            if len(params) >= MAX_PARAMS:
                break
    return params


def param_row(value: Scalar) -> tuple[float | None, str | None]:
    """(number, text) as a job_params row holds a value: numbers and booleans (0/1) as numbers, strings as text."""
    if isinstance(value, bool | int | float):
        return float(value), None
    return None, value
