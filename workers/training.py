"""The Keras work of a job, as plain functions: build, compile, fit, evaluate, predict."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import keras

from app.specchecker import compat
from app.specchecker.building import build_model
from app.specchecker.compiling import compile_kwargs


@contextmanager
def seeded(seed: int | None) -> Iterator[None]:
    """Seed Python, NumPy and the backend, and make TensorFlow's ops deterministic, for this job only."""
    if seed is None:
        yield
        return
    keras.utils.set_random_seed(seed)
    tensorflow = keras.backend.backend() == "tensorflow"
    if tensorflow:
        # Deterministic kernels are slower on GPUs, so the next job, which may not ask for a seed, must not
        # inherit them.
        compat.set_op_determinism(True)
    try:
        yield
    finally:
        if tensorflow:
            compat.set_op_determinism(False)


@contextmanager
def precision(policy: str | None) -> Iterator[None]:
    """Keras's mixed-precision policy for the models built inside, reset afterwards."""
    if policy is None:
        yield
        return
    keras.mixed_precision.set_global_policy(policy)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy("float32")


def with_dtype_policy(config: Any, policy: str | None) -> Any:
    """The canonical config names each layer's dtype policy (float32); mixed precision replaces them."""
    if policy is None:
        return config
    if isinstance(config, list):
        return [with_dtype_policy(item, policy) for item in config]
    if not isinstance(config, dict):
        return config
    if config.get("class_name") == "DTypePolicy" and config.get("config", {}).get("name") == "float32":
        return {**config, "config": {**config["config"], "name": policy}}
    return {key: with_dtype_policy(value, policy) for key, value in config.items()}


@contextmanager
def distribution(kind: str | None) -> Iterator[Any]:
    """tf.distribute.MirroredStrategy over the worker's visible GPUs (its CPU when it has none)."""
    if kind is None:
        yield None
        return
    if keras.backend.backend() != "tensorflow":
        raise ValueError(f"distribution={kind!r} needs a worker on the TensorFlow backend; this worker runs "
                         f"{keras.backend.backend()}")
    import tensorflow as tf

    strategy = tf.distribute.MirroredStrategy()
    with strategy.scope():
        yield strategy


def load_checkpoint(path: Path, rng: dict[str, Any]) -> keras.Model:
    """A model as a checkpoint left it: weights, optimizer state and compile, and the random states."""
    from workers.checkpoints import restore_rng

    suffixed = path.with_name(path.stem + ".keras") if path.suffix != ".keras" else path
    model = keras.saving.load_model(suffixed, safe_mode=True, compile=True)
    restore_rng(rng)
    return model


def history_of(epochs: list[tuple[int, dict[str, Any]]]) -> dict[str, list[float | None]]:
    """Keras's History.history from the epochs' logs, in epoch order (null where an epoch lacks a key)."""
    keys = sorted({key for _, logs in epochs for key in logs})
    ordered = sorted(epochs, key=lambda item: item[0])
    return {key: [logs.get(key) for _, logs in ordered] for key in keys}


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


def fit(model: keras.Model, *, compile_document: dict[str, Any] | None, data: dict[str, Any],
        arguments: dict[str, Any], callbacks: list[keras.callbacks.Callback],
        tune: Callable[[keras.Model], None] | None = None) -> dict[str, list[float]]:
    """compile (unless the model comes compiled, from a checkpoint) and fit, as the job asked; `tune` sees the
    compiled model just before fit (workers/tuning.py)."""
    if compile_document is not None:
        model.compile(**compile_kwargs(compile_document))
    if tune is not None:
        tune(model)
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
    # evaluate() without return_dict orders its list Keras's way (loss first, then compiled metrics).
    return {"metrics": values, "list": compat.metrics_in_order(model, values)}


def output_names(model: keras.Model) -> list[str]:
    return list(getattr(model, "output_names", None) or [f"output_{i}" for i in range(len(model.outputs))])


def predict(model: keras.Model, *, data: dict[str, Any], arguments: dict[str, Any],
            callbacks: list[keras.callbacks.Callback]) -> Any:
    return model.predict(data["x"], callbacks=callbacks, verbose=0, **arguments)
