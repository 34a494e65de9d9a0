"""The live measurement of a model's training step: one batch of the job's own data, side-effect free, on the
TensorFlow or the JAX backend (Keras's PyTorch trainer runs one step per call, so nothing there needs it)."""

from __future__ import annotations

import hashlib
import json
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import keras
import numpy as np

from workers.fit_data import is_dataset, leaves_of

# Batches timed after the probe's first (tracing) call; the fastest is the measurement.
PROBE_CALLS = 3
STEP_TIMES: OrderedDict[str, float] = OrderedDict()  # measured step seconds by model and batch shape
STEP_TIMES_MAX = 256


def signature(model: keras.Model, inputs: Any) -> str:
    shapes = [(tuple(leaf.shape), str(leaf.dtype)) for leaf in leaves_of(inputs)]
    text = json.dumps([model.to_json(), repr(shapes)], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def sample_inputs(x: Any, batch_size: int | None) -> Any:
    """One batch of the job's inputs: the first rows of arrays, or zeros shaped like a pipeline's batches.

    A pipeline is never iterated here: a new iterator over a shuffling dataset would draw a new order. Arrays
    stay NumPy off the TensorFlow backend (a JAX worker may have no TensorFlow at all).
    """
    if x is None:
        return None
    if is_dataset(x):
        import tensorflow as tf

        spec = x.element_spec
        spec = spec[0] if isinstance(spec, tuple) else spec

        def zeros(leaf: Any) -> Any:
            shape = [32 if i == 0 and d is None else d for i, d in enumerate(leaf.shape.as_list())]
            if any(d is None for d in shape):
                raise ValueError("the pipeline's batches have dimensions of unknown size")
            return tf.zeros(shape, dtype=leaf.dtype)

        return tf.nest.map_structure(zeros, spec)
    rows = batch_size or 32
    convert = np.asarray
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        convert = tf.convert_to_tensor

    def first(leaf: Any) -> Any:
        return convert(np.asarray(leaf[:rows]))

    if isinstance(x, dict):
        return {name: first(leaf) for name, leaf in x.items()}
    if isinstance(x, list | tuple):
        return [first(leaf) for leaf in x]
    return first(x)


def measured_step_s(model: keras.Model, inputs: Any) -> float:
    """measure_step, done once per model and batch shape in this process; later fits of the same reuse it."""
    key = signature(model, inputs)
    if key in STEP_TIMES:
        STEP_TIMES.move_to_end(key)
        return STEP_TIMES[key]
    seconds = measure_step(model, inputs)
    STEP_TIMES[key] = seconds
    while len(STEP_TIMES) > STEP_TIMES_MAX:
        STEP_TIMES.popitem(last=False)
    return seconds


# A sweep's trials differ only by the values of its space, and its models by a few sizes: a trial whose own model and
# batch shapes were not measured on this worker takes the step measured for an earlier trial of its sweep with the
# same batch shapes, if the two models' trainable parameters differ by at most this factor; scaled up by that factor
# for a larger model (a step grows no faster than its parameters: the per-call cost stays), as measured for a smaller
# one. The probe traces a forward and backward pass, 0.5 s of a trial's start on a busy 2-core machine; what it
# chooses (steps_per_execution) decides how often batch hooks run, never what is computed.
SWEEP_REUSE_RATIO = 4.0
SWEEP_STEPS: OrderedDict[str, tuple[int, float]] = OrderedDict()  # by sweep and batch shape: (parameters, seconds)


def trainable_parameters(model: keras.Model) -> int:
    return int(sum(int(np.prod(variable.shape)) for variable in model.trainable_variables))


def sweep_step_s(model: keras.Model, inputs: Any, *, sweep_id: str) -> tuple[float, str | None]:
    """(step seconds, None) as measured_step_s for a sweep's trial, or (an estimate, how it was made) from a
    measurement of one of its sweep's trials on this worker (SWEEP_REUSE_RATIO)."""
    shapes = repr([(tuple(leaf.shape), str(leaf.dtype)) for leaf in leaves_of(inputs)])
    family = hashlib.sha256(json.dumps([sweep_id, shapes, keras.backend.backend()]).encode()).hexdigest()
    parameters = trainable_parameters(model)
    if signature(model, inputs) not in STEP_TIMES and family in SWEEP_STEPS:
        measured_parameters, seconds = SWEEP_STEPS[family]
        ratio = parameters / max(measured_parameters, 1)
        if 1 / SWEEP_REUSE_RATIO <= ratio <= SWEEP_REUSE_RATIO:
            SWEEP_STEPS.move_to_end(family)
            estimate = seconds * max(1.0, ratio)
            return estimate, (
                f"the step not measured again: {estimate * 1e3:.2f} ms estimated from {seconds * 1e3:.2f} ms measured "
                f"on this worker for a trial of the same sweep with the same batch shape and {measured_parameters} "
                f"trainable parameters (this model: {parameters})"
            )
    seconds = measured_step_s(model, inputs)
    SWEEP_STEPS[family] = (parameters, seconds)
    SWEEP_STEPS.move_to_end(family)
    while len(SWEEP_STEPS) > STEP_TIMES_MAX:
        SWEEP_STEPS.popitem(last=False)
    return seconds, None


def measure_step(model: keras.Model, inputs: Any) -> float:
    """Seconds of one forward and backward pass of `model` on `inputs` (a batch), the fastest of a few.

    Changes nothing: inference mode (no dropout draws, no batch-norm statistics), gradients computed and
    dropped, no optimizer. The first call traces (and on JAX compiles); the calls after it are timed.
    """
    step = _jax_step(model) if keras.backend.backend() == "jax" else _tensorflow_step(model)

    def once() -> float:
        started = time.perf_counter()
        step(inputs)
        return time.perf_counter() - started

    once()
    return min(once() for _ in range(PROBE_CALLS))


def _tensorflow_step(model: keras.Model) -> Callable[[Any], None]:
    import tensorflow as tf

    variables = model.trainable_variables

    @tf.function
    def step(batch: Any) -> Any:
        with tf.GradientTape() as tape:
            outputs = model(batch, training=False)
            loss = tf.add_n([tf.reduce_mean(tf.square(tf.cast(out, "float32"))) for out in tf.nest.flatten(outputs)])
        return tape.gradient(loss, variables) if variables else loss

    def run(batch: Any) -> None:
        for value in tf.nest.flatten(step(batch)):
            if value is not None:
                value.numpy()

    return run


def _jax_step(model: keras.Model) -> Callable[[Any], None]:
    """The same pass as a jitted function of the variables' values (Keras's stateless call): the model's
    variables are read, never assigned."""
    import jax
    import jax.numpy as jnp

    trainable = [variable.value for variable in model.trainable_variables]
    non_trainable = [variable.value for variable in model.non_trainable_variables]

    def loss(trainable: list[Any], non_trainable: list[Any], batch: Any) -> Any:
        outputs, _ = model.stateless_call(trainable, non_trainable, batch, training=False)
        return sum(jnp.mean(jnp.square(out.astype("float32"))) for out in jax.tree_util.tree_leaves(outputs))

    step = jax.jit(jax.value_and_grad(loss))

    def run(batch: Any) -> None:
        jax.block_until_ready(step(trainable, non_trainable, batch))

    return run


def sample_targets(data: dict[str, Any], batch_size: int | None) -> Any:
    x = data["x"]
    if is_dataset(x):
        import tensorflow as tf

        spec = x.element_spec
        if not isinstance(spec, tuple) or len(spec) < 2:
            raise ValueError("the pipeline yields no targets")

        def zeros(leaf: Any) -> Any:
            return tf.zeros(
                [32 if i == 0 and d is None else d for i, d in enumerate(leaf.shape.as_list())], dtype=leaf.dtype
            )

        return tf.nest.map_structure(zeros, spec[1])
    return sample_inputs(data.get("y"), batch_size)
