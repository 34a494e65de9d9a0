"""A job's arrays against the model's inputs, outputs and loss, checked at submit (pure Python, no Keras).

Keras would find a mismatch only on a worker, in a job that fails after it was queued. The spec checker
stored the shape of every named input and output in the model's summary, and every stored array's shape
is known from its header, so the API can say at once which array does not fit which input, or which
target the loss cannot compare with which output. The rules are Keras's own: the batch axis is free, a
model dimension of None takes any size, and Keras adds or drops one trailing axis of size 1 (an input
of shape (None, 1) takes an array of shape (n,)). A model without an input shape (built when it first
sees data) and losses this module cannot read are left to Keras.
"""

from __future__ import annotations

import re
from typing import Any

from app.core.contract import ARRAY
from app.core.errors import Problem
from app.specchecker.safety import did_you_mean

# Losses that compare targets and outputs elementwise and refuse different shapes (Keras raises).
EXACT_LOSSES = frozenset({
    "categorical_crossentropy", "binary_crossentropy", "binary_focal_crossentropy",
    "categorical_focal_crossentropy", "kl_divergence", "hinge", "squared_hinge", "categorical_hinge",
})
# Losses that broadcast: a target may differ from the output only where one of them has size 1.
BROADCAST_LOSSES = frozenset({
    "mean_squared_error", "mean_absolute_error", "mean_absolute_percentage_error",
    "mean_squared_logarithmic_error", "huber", "log_cosh", "poisson", "cosine_similarity",
})
SPARSE_LOSSES = frozenset({"sparse_categorical_crossentropy", "sparse_categorical_focal_crossentropy"})
ALIASES = {
    "mse": "mean_squared_error", "mae": "mean_absolute_error", "mape": "mean_absolute_percentage_error",
    "msle": "mean_squared_logarithmic_error", "kld": "kl_divergence", "kullback_leibler_divergence":
    "kl_divergence", "logcosh": "log_cosh", "huber_loss": "huber",
}
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def check_data_shapes(summary: dict[str, Any], data: dict[str, Any], compile_document: dict[str, Any] | None,
                      *, field: str) -> None:
    """Raise a 422 Problem if an array of the job cannot go where the job puts it.

    `data` holds the job's resolved arrays by Keras argument (`x`, `y`, `validation_data`), each one
    array (`{"$array": {"shape": ...}}`), a list or dict of them, or a `{"pipeline": {...}}`."""
    inputs, outputs = summary.get("inputs"), summary.get("outputs")
    if not summary.get("built") or not inputs:
        return
    loss = (compile_document or {}).get("loss")
    if outputs:
        _check_compile_keys(outputs, compile_document or {})
    for where, x, y in _pairs(data, field):
        if x is not None:
            _check_inputs(inputs, x, f"{where}.x")
        if y is not None and outputs:
            _check_targets(outputs, y, loss, f"{where}.y")


def _pairs(data: dict[str, Any], field: str) -> list[tuple[str, Any, Any]]:
    """(field prefix, x, y) for the training data and the validation data, inside pipelines too."""
    found = []
    for group, where in ((data, field), (data.get("validation_data"), f"{field}.validation_data")):
        if not isinstance(group, dict):
            continue
        x = group.get("x")
        if isinstance(group.get("pipeline"), dict):  # validation_data given as a pipeline
            found.append((f"{where}.pipeline", group["pipeline"].get("x"), group["pipeline"].get("y")))
        elif isinstance(x, dict) and isinstance(x.get("pipeline"), dict):  # x given as a pipeline
            found.append((f"{where}.x.pipeline", x["pipeline"].get("x"), x["pipeline"].get("y")))
        else:
            found.append((where, x, group.get("y")))
    return found


def _array(value: Any) -> dict[str, Any] | None:
    if isinstance(value, dict) and ARRAY in value:
        return value[ARRAY]
    if isinstance(value, dict) and isinstance(value.get("shape"), list):
        return value
    return None


def key(entry: dict[str, Any]) -> str:
    """What a dict of targets, losses or metrics names an output by: its key in a model built with a dict of
    outputs (Keras refuses the layer's name there), else its layer's name."""
    return entry.get("key") or entry["name"]


def _check_compile_keys(outputs: list[dict[str, Any]], compile_document: dict[str, Any]) -> None:
    """Losses and metrics given by output name name outputs the model has (Keras fails the job otherwise)."""
    names = [key(entry) for entry in outputs]
    for argument in ("loss", "metrics", "weighted_metrics"):
        value = compile_document.get(argument)
        if not isinstance(value, dict) or "class_name" in value:
            continue
        unknown = [name for name in value if name not in names]
        if unknown:
            where = f"compile.{argument}.{unknown[0]}"
            raise Problem(422, "Unknown Output", f"{where}: the model has no output named {unknown[0]!r}"
                          f"{did_you_mean(unknown[0], names)}; its outputs are {names}.", field=where)


def _match(structure: Any, entries: list[dict[str, Any]], field: str, what: str) -> list[tuple[str, Any, Any]]:
    """(field, array, model entry) pairs: one array for one entry, a list in order, or a dict by name (an
    output's by its key)."""
    names = [key(entry) for entry in entries]
    single = _array(structure)
    if single is not None:
        if len(entries) != 1:
            raise Problem(422, f"Mismatched {what.title()}s", f"{field} is one array but the model has {len(entries)} "
                          f"{what}s {names}: give a list in that order, or a dict by {what} name.", field=field)
        return [(field, single, entries[0])]
    if isinstance(structure, list):
        if len(structure) != len(entries):
            raise Problem(422, f"Mismatched {what.title()}s", f"{field} has {len(structure)} arrays but the model has "
                          f"{len(entries)} {what}s {names}.", field=field)
        return [(f"{field}[{i}]", _array(item), entry)
                for i, (item, entry) in enumerate(zip(structure, entries, strict=True)) if _array(item)]
    if isinstance(structure, dict):
        unknown = [key for key in structure if key not in names]
        if unknown:
            raise Problem(422, f"Unknown {what.title()}", f"{field}.{unknown[0]}: the model has no {what} named "
                          f"{unknown[0]!r}{did_you_mean(unknown[0], names)}; its {what}s are {names}.",
                          field=f"{field}.{unknown[0]}")
        missing = [name for name in names if name not in structure]
        if missing:
            raise Problem(422, f"Missing {what.title()}", f"{field} gives no array for the model's {what} "
                          f"{missing[0]!r}; its {what}s are {names}.", field=field)
        by_name = {key(entry): entry for entry in entries}
        return [(f"{field}.{key}", _array(value), by_name[key]) for key, value in structure.items() if _array(value)]
    return []


def _dims_fit(array: list[Any], model: list[Any], *, broadcast: bool = False) -> bool:
    return len(array) == len(model) and all(
        m is None or a is None or a == m or (broadcast and 1 in (a, m)) for a, m in zip(array, model, strict=True))


def fits(array_shape: list[Any], model_shape: list[Any], *, broadcast: bool = False) -> bool:
    """Whether samples of `array_shape` go where the model takes `model_shape` (both with the batch axis)."""
    array, model = list(array_shape[1:]), list(model_shape[1:])
    if _dims_fit(array, model, broadcast=broadcast):
        return True
    # Keras adds or drops one trailing axis of size 1.
    if len(array) == len(model) - 1 and model and model[-1] == 1:
        return _dims_fit(array, model[:-1], broadcast=broadcast)
    if len(array) == len(model) + 1 and array and array[-1] == 1:
        return _dims_fit(array[:-1], model, broadcast=broadcast)
    return False


def _shown(shape: list[Any]) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def _check_inputs(inputs: list[dict[str, Any]], x: Any, field: str) -> None:
    for where, info, entry in _match(x, inputs, field, "input"):
        if entry.get("shape") and not fits(info["shape"], entry["shape"]):
            raise Problem(422, "Mismatched Input", f"{where} has shape {_shown(info['shape'])} but the model's input "
                          f"{entry['name']!r} takes {_shown(entry['shape'])} (None: any size), so each sample must "
                          f"be {_shown(entry['shape'][1:])}. Reshape the array, or make the model's input fit it.",
                          field=where, array_shape=info["shape"], input_shape=entry["shape"])


def loss_name(loss: Any, output: str, index: int) -> str | None:
    """The canonical name of the loss applied to an output (`CategoricalCrossentropy` →
    `categorical_crossentropy`), or None when the loss is not one this module knows."""
    if isinstance(loss, list):
        return loss_name(loss[index], output, index) if index < len(loss) else None
    if isinstance(loss, dict) and "class_name" not in loss:
        return loss_name(loss.get(output), output, index) if output in loss else None
    name = loss.get("class_name") if isinstance(loss, dict) else loss
    if not isinstance(name, str) or name == "function":
        name = loss.get("config") if isinstance(loss, dict) else None
    if not isinstance(name, str):
        return None
    name = _CAMEL.sub("_", name.rsplit(".", 1)[-1]).lower()
    return ALIASES.get(name, name)


def _check_targets(outputs: list[dict[str, Any]], y: Any, loss: Any, field: str) -> None:
    order = {key(entry): i for i, entry in enumerate(outputs)}
    for where, info, entry in _match(y, outputs, field, "output"):
        name = loss_name(loss, key(entry), order[key(entry)])
        shape, out = info["shape"], entry.get("shape")
        if not out or name is None:
            continue
        if name in SPARSE_LOSSES:
            ok = fits(shape, out[:-1]) or fits(shape, [*out[:-1], 1])
            hint = ("integer class labels of shape " + _shown([shape[0], *out[1:-1]]) + "; labels that are "
                    "one-hot go with categorical_crossentropy")
        elif name in EXACT_LOSSES or name in BROADCAST_LOSSES:
            ok = fits(shape, out, broadcast=name in BROADCAST_LOSSES)
            hint = f"targets of shape {_shown([shape[0], *out[1:]])}"
            if name.startswith("categorical") and len(shape) == len(out) - 1:
                hint += (" (one-hot encode integer labels with keras.utils.to_categorical, or use "
                         "sparse_categorical_crossentropy)")
        else:
            continue
        if not ok:
            raise Problem(422, "Mismatched Targets", f"{where} has shape {_shown(shape)} but the loss {name} compares "
                          f"it with the model's output {key(entry)!r} of shape {_shown(out)}: it needs {hint}.",
                          field=where, array_shape=shape, output_shape=out, loss=name)
