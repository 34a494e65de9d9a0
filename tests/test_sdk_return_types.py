"""`client.remote(model)` returns what plain Keras returns: for a model of one input and output, of lists of
inputs and outputs, and of dicts of them, the same types, keys and shapes from `fit`, `evaluate` (with and without
`return_dict`) and `predict` (the table in docs/sdk.md)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import kerasd

ROWS = 64


def build(kind: str) -> tuple[Any, Any, Any]:
    """(model, x, y) of one kind, built locally with a fixed seed."""
    import keras

    keras.utils.set_random_seed(5)
    rng = np.random.default_rng(5)
    a, b = rng.random((ROWS, 6), dtype="float32"), rng.random((ROWS, 4), dtype="float32")
    scores, labels = rng.random((ROWS, 2), dtype="float32"), np.eye(3, dtype="float32")[rng.integers(0, 3, ROWS)]
    if kind == "single":
        inputs = keras.Input((6,), name="a")
        model = keras.Model(inputs, keras.layers.Dense(2, name="score")(keras.layers.Dense(8)(inputs)))
        return model, a, scores
    left, right = keras.Input((6,), name="a"), keras.Input((4,), name="b")
    hidden = keras.layers.Dense(8, activation="relu")(keras.layers.Concatenate()([left, right]))
    score = keras.layers.Dense(2, name="score")(hidden)
    label = keras.layers.Dense(3, activation="softmax", name="label")(hidden)
    if kind == "list":
        return keras.Model([left, right], [score, label]), [a, b], [scores, labels]
    # Keyed in the order the outputs are declared, not sorted: Keras answers in that order.
    model = keras.Model({"a": left, "b": right}, {"score": score, "label": label})
    return model, {"a": a, "b": b}, {"score": scores, "label": labels}


def compile_arguments(kind: str) -> dict[str, Any]:
    if kind == "single":
        return {"optimizer": "adam", "loss": "mse", "metrics": ["mae"]}
    if kind == "list":
        return {"optimizer": "adam", "loss": ["mse", "categorical_crossentropy"], "metrics": {"label": ["accuracy"]}}
    return {"optimizer": "adam", "loss": {"score": "mse", "label": "categorical_crossentropy"},
            "metrics": {"label": ["accuracy"]}}


def shape_of(value: Any) -> Any:
    """The structure of a return value: container types, keys and array shapes; numbers as their type."""
    if isinstance(value, dict):
        return ("dict", {key: shape_of(item) for key, item in value.items()})
    if isinstance(value, list | tuple):
        return (type(value).__name__, [shape_of(item) for item in value])
    if isinstance(value, np.ndarray):
        return ("ndarray", value.shape)
    return type(value).__name__


def calls(model: Any, x: Any, y: Any) -> dict[str, Any]:
    import keras

    history = model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    return {
        "fit": (isinstance(history, keras.callbacks.History), sorted(history.history), history.epoch,
                {key: len(values) for key, values in history.history.items()}),
        "evaluate": shape_of(model.evaluate(x, y, batch_size=16, verbose=0)),
        "evaluate(return_dict=True)": shape_of(model.evaluate(x, y, batch_size=16, verbose=0, return_dict=True)),
        "predict": shape_of(model.predict(x, batch_size=16, verbose=0)),
    }


@pytest.mark.parametrize("kind", ["single", "list", "dict"])
def test_remote_returns_what_keras_returns(api_url: str, kind: str) -> None:
    model, x, y = build(kind)
    model.compile(**compile_arguments(kind))
    expected = calls(model, x, y)

    with kerasd.Client(api_url, verbose=0) as client:
        remote = client.remote(build(kind)[0])
        remote.compile(**compile_arguments(kind))
        got = calls(remote, x, y)
    assert got == expected
    if kind == "dict":
        assert list(got["predict"][1]) == ["score", "label"], "the dict's keys, in the model's order"


def test_evaluate_lists_values_in_keras_order(api_url: str) -> None:
    """Without return_dict, the values come in Keras's own order, which for named outputs is not the dict's."""
    model, x, y = build("dict")
    model.compile(**compile_arguments("dict"))
    with kerasd.Client(api_url, verbose=0) as client:
        remote = client.remote(model)
        remote.compile(**compile_arguments("dict"))
        values = remote.evaluate(x, y, batch_size=16, verbose=0)
        named = remote.evaluate(x, y, batch_size=16, verbose=0, return_dict=True)
    local = model.evaluate(x, y, batch_size=16, verbose=0)
    assert values == pytest.approx(local, rel=1e-4)
    assert sorted(values) == sorted(named.values())
