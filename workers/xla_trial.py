"""The XLA trial: copies of a compiled model trained with and without XLA, the job's random state untouched."""

from __future__ import annotations

import random
import time
from contextlib import contextmanager
from typing import Any

import keras
import numpy as np

from app.specchecker import compat

XLA_TRIAL_STEPS = 6


@contextmanager
def isolated_rng():
    """Every random state a Keras trial could draw from, put back afterwards: building copies of a model
    draws initializer seeds, and the job's own draws must come out as if the trial never happened."""
    global_state = compat.global_state()
    python_state, numpy_state = random.getstate(), np.random.get_state()
    generator = global_state.get_global_attribute("global_seed_generator")
    generator_state = generator.state.numpy() if generator is not None else None
    context_rng = None
    if keras.backend.backend() == "tensorflow":
        context_rng = compat.tensorflow_seed_rng()
    context_state = context_rng.getstate() if context_rng is not None else None
    try:
        yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)
        if generator is not None and global_state.get_global_attribute("global_seed_generator") is generator:
            generator.state.assign(generator_state)
        else:
            global_state.set_global_attribute("global_seed_generator", generator)
        if context_rng is not None:
            context_rng.setstate(context_state)


def xla_trial(model: keras.Model, x: Any, y: Any, *, steps: int = XLA_TRIAL_STEPS) -> dict[str, Any]:
    """Train two copies of the compiled model for a few steps on the same batch, with and without XLA:
    the seconds a step of each and whether their weights came out bit-identical."""
    seconds: dict[bool, float] = {}
    weights: dict[bool, list[np.ndarray]] = {}
    with isolated_rng():
        for jit in (False, True):
            copy = keras.models.clone_model(model)
            copy.set_weights(model.get_weights())
            copy.compile_from_config(model.get_compile_config())
            copy.steps_per_execution, copy.jit_compile = 1, jit
            copy.train_on_batch(x, y)  # traces (and with XLA compiles)
            times = []
            for _ in range(steps):
                started = time.perf_counter()
                copy.train_on_batch(x, y)
                times.append(time.perf_counter() - started)
            seconds[jit], weights[jit] = min(times), copy.get_weights()
    identical = all(np.array_equal(a, b) for a, b in zip(weights[False], weights[True], strict=True))
    return {"step_ms": {"xla": round(seconds[True] * 1e3, 3), "no_xla": round(seconds[False] * 1e3, 3)},
            "identical": identical}
