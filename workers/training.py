"""The Keras work of a job, as plain functions: build, compile, fit, evaluate, predict."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import keras

from workers.building import build_model
from workers.compiling import compile_kwargs


@contextmanager
def seeded(seed: int | None) -> Iterator[None]:
    """Seed Python, NumPy and the backend, and make TensorFlow's ops deterministic, for this job only."""
    if seed is None:
        yield
        return
    keras.utils.set_random_seed(seed)
    tensorflow = keras.backend.backend() == "tensorflow"
    if tensorflow:
        # TF exports only the switch on; the switch off lives beside it. Deterministic kernels are slower on
        # GPUs, so the next job, which may not ask for a seed, must not inherit them.
        from tensorflow.python.framework import config as tf_config

        tf_config.enable_op_determinism()
    try:
        yield
    finally:
        if tensorflow:
            tf_config.disable_op_determinism()


def load_model(keras_config: dict[str, Any], weights: Path | None) -> keras.Model:
    model = build_model(keras_config)
    if weights is not None:
        if not model.built:
            raise ValueError("the model has no input shape, so it has no weights to start from yet; give the "
                             "model an input_shape to warm-start it")
        model.load_weights(weights)
    return model


def _validation(value: Any) -> Any:
    """validation_data as Keras takes it: a dataset, or the tuple (x, y[, sample_weight])."""
    if value is None or not isinstance(value, dict):
        return value
    parts = [value["x"], value["y"]] + ([value["sample_weight"]] if value.get("sample_weight") is not None else [])
    return tuple(parts)


def fit(model: keras.Model, *, compile_document: dict[str, Any], data: dict[str, Any],
        arguments: dict[str, Any], callbacks: list[keras.callbacks.Callback]) -> dict[str, list[float]]:
    model.compile(**compile_kwargs(compile_document))
    arguments = dict(arguments)
    if arguments.get("class_weight") is not None:
        arguments["class_weight"] = {int(k): v for k, v in arguments["class_weight"].items()}
    history = model.fit(
        data["x"], data.get("y"), sample_weight=data.get("sample_weight"),
        validation_data=_validation(data.get("validation_data")), callbacks=callbacks, verbose=0, **arguments,
    )
    return {key: [json_number(v) for v in values] for key, values in history.history.items()}


def json_number(value: Any) -> float | None:
    """A metric as JSON can hold it: NaN and infinities (a diverged loss) become null."""
    number = float(value)
    return number if math.isfinite(number) else None


def evaluate(model: keras.Model, *, compile_document: dict[str, Any], data: dict[str, Any],
             arguments: dict[str, Any], callbacks: list[keras.callbacks.Callback]) -> dict[str, Any]:
    """Keras's answer both ways: the dict (`return_dict=True`) and the list, in Keras's order."""
    model.compile(**compile_kwargs(compile_document))
    logs = model.evaluate(data["x"], data.get("y"), sample_weight=data.get("sample_weight"),
                          callbacks=callbacks, verbose=0, return_dict=True, **arguments)
    values = {name: json_number(value) for name, value in logs.items()}
    # evaluate() without return_dict orders its list this way (loss first, then compiled metrics); the
    # method is private, so fall back to the dict's order should a Keras release drop it.
    ordered = getattr(model, "_flatten_metrics_in_order", None)
    as_list = ordered(values) if ordered is not None else list(values.values())
    as_list = as_list if isinstance(as_list, list) else [as_list]
    return {"metrics": values, "list": as_list}


def output_names(model: keras.Model) -> list[str]:
    return list(getattr(model, "output_names", None) or [f"output_{i}" for i in range(len(model.outputs))])


def predict(model: keras.Model, *, data: dict[str, Any], arguments: dict[str, Any],
            callbacks: list[keras.callbacks.Callback]) -> Any:
    return model.predict(data["x"], callbacks=callbacks, verbose=0, **arguments)
