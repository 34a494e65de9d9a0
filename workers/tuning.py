"""Execution tuning for fit jobs: faster than the user's own `model.fit`, never different.

What the worker tunes, only where the job left it to Keras (what the user sets always wins) and only while
the job's `tuning` option is on (the default):

- `steps_per_execution`: Keras's default runs one step per call into TensorFlow and converts every
  step's logs to Python for the callbacks; on a CPU that per-call cost is a large part of a small model's
  step. The worker measures the model's step (a forward and backward pass on one batch of the job's own
  data, side-effect free) and runs as many steps per execution as fit in `execution_s` (0.1 s), so the
  per-call cost vanishes while batch hooks (progress, cancel) still run several times a second.
- the input pipeline: a tf.data pipeline the job declared gets a final `prefetch(AUTOTUNE)`, so batches are
  ready when a step wants them. Arrays need nothing: Keras's TensorFlow adapter converts them to tensors once
  and already gathers and prefetches batches in tf.data, off the training thread.
- `jit_compile` (XLA): only after a trial on two copies of the model shows that XLA (or, where Keras turns
  it on by default, no XLA) is faster *and* gives bit-identical weights, and only for fits long enough to
  repay the trial's compile.

Why the math stays the same: `steps_per_execution` runs the same train step in a `tf.while_loop` over the
same batches in the same order (shuffling, seed generators and the optimizer do not see it); Keras's own
bit-identity across it is checked by tests/test_tuning.py. Where it would change what runs, the worker
leaves it alone: a declared callback that acts per batch (TerminateOnNaN, a ModelCheckpoint with an integer
`save_freq`, TensorBoard per batch or profiling) would see fewer batches, so `steps_per_execution` stays 1;
with `steps_per_epoch` or `validation_steps` Keras would run whole executions past them, so only divisors of
those are chosen. XLA changes floating-point results on most hardware, hence the identity check.

By backend: on TensorFlow all of the above. On JAX `steps_per_execution` too (Keras's JAX trainer runs an
execution's steps, the same jitted train step on the same batches in order, with the batch hooks and the logs
they read once an execution instead of once a step), measured with a jitted probe; `jit_compile` stays True
there (it is jax.jit itself) and arrays stay with Keras's JAX adapter. On PyTorch nothing: Keras's trainer
refuses more than one step per execution, and `jit_compile` there is torch.compile, not tried. The job's
`tuning` record says which applied.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import keras

from app.core.contract import DeclaredCallback, JobRequest
from app.specchecker import compat
from workers.array_batches import arrays_as_datasets
from workers.fit_data import batch_count, is_dataset, validation_x
from workers.step_probe import measured_step_s, sample_inputs, sample_targets, sweep_step_s
from workers.tuning_choice import (
    batch_event_interval_s,
    choose_jit_compile,
    choose_steps_per_execution,
    fit_seconds,
    xla_trial_obstacle,
)
from workers.xla_trial import xla_trial

log = logging.getLogger("kerasd.worker")

TUNABLE = ("steps_per_execution", "jit_compile")
# Why `jit_compile` is left as Keras sets it on the backends where the XLA trial does not run.
NOT_TRIED = {
    "jax": "on the jax backend it is jax.jit, XLA compiling the whole train step, and without it every op runs on "
    "its own: not tried",
    "torch": "on the torch backend it means torch.compile, whose compile takes longer than most fits and whose "
    "results are not checked against eager ones here: not tried",
}
KERAS_DEFAULTS = {"steps_per_execution": 1, "jit_compile": "auto"}


def requested(request: JobRequest) -> tuple[bool, set[str]]:
    """(tuning on, the tunable compile arguments the user set) for a stored job request.

    A job stored before tuning existed has no `tuning` entry: a value other than Keras's default is then
    taken as the user's.
    """
    tuning = request.tuning
    compile_document = request.compile.model_dump() if request.compile is not None else {}
    if tuning is None:
        return True, {
            name for name, default in KERAS_DEFAULTS.items() if compile_document.get(name, default) != default
        }
    return tuning.enabled, set(tuning.user_set)


def batch_level_callbacks(declared: list[DeclaredCallback]) -> list[str]:
    """The declared callbacks that act on individual batches (they would see only each execution's last)."""
    found = []
    for callback in declared:
        name, config = callback.class_name, callback.config
        if name == "TerminateOnNaN":
            found.append(name)
        elif name == "ModelCheckpoint" and config.get("save_freq", "epoch") != "epoch":
            found.append(f"{name}(save_freq={config['save_freq']})")
        elif name == "TensorBoard" and (
            config.get("update_freq", "epoch") != "epoch" or config.get("profile_batch", 0) not in (0, [0, 0], None)
        ):
            found.append(
                f"{name}(update_freq={config.get('update_freq')}, profile_batch={config.get('profile_batch')})"
            )
    return found


class FitTuning:
    """The tuning of one fit: `plan` before the callbacks are made, `apply` between compile and fit."""

    def __init__(
        self,
        *,
        request: JobRequest,
        data: dict[str, Any],
        arguments: dict[str, Any],
        execution_s: float = 0.1,
        xla_trial_min_fit_s: float = 120.0,
        event_interval_s: float = 0.5,
        log_event: Callable[[str], None] | None = None,
    ) -> None:
        self.enabled, self.user_set = requested(request)
        self.request, self.arguments = request, arguments
        self.data, self._original_data = dict(data), dict(data)
        self.fit_arguments = dict(arguments)  # what fit is called with (arrays made into datasets: no batching)
        # Batch hooks run once an execution: never longer than the progress interval asks.
        self.execution_s = min(execution_s, event_interval_s)
        self.event_interval_s = event_interval_s
        self.xla_trial_min_fit_s = xla_trial_min_fit_s
        self._log_event = log_event or (lambda message: None)
        self.step_s: float | None = None
        self.step_estimated = False  # a sweep's trial: step_s from another trial's measurement (step_probe.py)
        self.steps_per_execution: int | None = None  # what tuning chose; None: left as compiled
        self.jit_compile: bool | None = None
        self.notes: list[str] = []
        self.input_changes: list[str] = []
        self.trial: dict[str, Any] | None = None
        self.record: dict[str, Any] = {"enabled": self.enabled}

    # --- before the callbacks and compile ----------------------------------------------------------

    def plan(self, model: keras.Model) -> FitTuning:
        if not self.enabled:
            return self
        compile_document = self.request.compile.model_dump() if self.request.compile is not None else {}
        if compile_document.get("run_eagerly"):
            self.enabled = False
            self.record = {"enabled": False, "notes": ["run_eagerly: nothing to tune"]}
            return self
        started = time.perf_counter()
        self._plan_steps_per_execution(model, compile_document)
        probed = time.perf_counter()
        self._tune_inputs(model)
        # Where a job's start goes (workers/start_phases.py), read by bench/sweep.py.
        log.info(
            "tuning planned: step=%.0fms%s inputs=%.0fms",
            (probed - started) * 1e3,
            " (estimated)" if self.step_estimated else "",
            (time.perf_counter() - probed) * 1e3,
        )
        return self

    def _plan_steps_per_execution(self, model: keras.Model, compile_document: dict[str, Any]) -> None:
        if "steps_per_execution" in self.user_set:
            self.notes.append(f"steps_per_execution={compile_document.get('steps_per_execution')} as the job set it")
            return
        per_batch = batch_level_callbacks(self.request.callbacks)
        if per_batch:
            self.notes.append(f"steps_per_execution stays 1: {', '.join(per_batch)} act(s) on every batch")
            return
        try:
            self.step_s = self._step_seconds(model)
        except Exception as exc:  # a model the probe cannot call: leave Keras's default
            log.info("step probe failed: %s", exc)
            self.notes.append(f"steps_per_execution not tuned: the step could not be measured ({exc})")
            return
        if self.step_s is None:
            return
        self.steps_per_execution = choose_steps_per_execution(
            self.step_s,
            execution_s=self.execution_s,
            steps_per_epoch=self._steps_per_epoch(),
            must_divide=self._divisor_bounds(),
        )

    def _tune_inputs(self, model: keras.Model) -> None:
        """Pipelines get a prefetch; arrays become the same batches, built by Keras's own array adapter, in
        a dataset with tf.data's autotuner off (fit's `fit_arguments` then leave batching to the dataset)."""
        for name in ("x", "validation_data"):
            value = self.data.get(name)
            if is_dataset(value) and not compat.ends_with_prefetch(value):
                import tensorflow as tf

                self.data[name] = value.prefetch(tf.data.AUTOTUNE)
                self.input_changes.append(
                    f"{'validation pipeline' if name != 'x' else 'pipeline'}: prefetch(AUTOTUNE) added"
                )
        why_not = self._arrays_obstacle(model)
        if why_not:
            if why_not != "not arrays":
                self.notes.append(f"arrays left to Keras: {why_not}")
            return
        try:
            kept: list[str] = []
            self.data, self.fit_arguments = arrays_as_datasets(self.data, self.arguments, kept)
        except Exception as exc:  # anything Keras's adapter refuses is left for fit to report as it would
            log.info("array dataset not built: %s", exc)
            self.notes.append(f"arrays left to Keras: {type(exc).__name__}: {exc}")
            return
        self.input_changes.append(
            "arrays: the batches Keras's array adapter makes, with tf.data autotuning off "
            "(its thread held epoch starts for seconds)"
        )
        self.input_changes.extend(kept)

    def _arrays_obstacle(self, model: keras.Model) -> str | None:
        if is_dataset(self.data.get("x")) or self.data.get("x") is None:
            return "not arrays"
        if keras.backend.backend() != "tensorflow":
            return f"the {keras.backend.backend()} trainer batches them itself (the tf.data path is TensorFlow's)"
        if not model.built:
            return "the model is built by fit from the data"
        if self.request.distribution or compat.distribute_strategy(model) is not None:
            return "a distribution strategy"
        if self.arguments.get("steps_per_epoch") or self.arguments.get("validation_steps"):
            return "steps_per_epoch / validation_steps (Keras keeps array iterators across epochs then)"
        return None

    def _step_seconds(self, model: keras.Model) -> float | None:
        if keras.backend.backend() == "torch":
            self.notes.append(
                "steps_per_execution stays 1 on the torch backend: Keras's PyTorch trainer runs one "
                "step per call and refuses more"
            )
            return None
        if not model.built:
            self.notes.append("steps_per_execution not tuned: the model is built by fit from the data")
            return None
        if any(getattr(layer, "stateful", False) for layer in compat.all_layers(model)):
            self.notes.append("steps_per_execution not tuned: a stateful layer would change state when probed")
            return None
        inputs = sample_inputs(self._original_data["x"], self.arguments.get("batch_size"))
        if self.request.trial is None:
            return measured_step_s(model, inputs)
        seconds, note = sweep_step_s(model, inputs, sweep_id=self.request.trial.sweep_id)
        if note is not None:
            self.step_estimated = True
            self.notes.append(note)
        return seconds

    def _steps_per_epoch(self) -> int | None:
        given = self.arguments.get("steps_per_epoch")
        if given:
            return int(given)
        return batch_count(
            self.data.get("x"), self.arguments.get("batch_size"), self.arguments.get("validation_split") or 0.0
        )

    def _divisor_bounds(self) -> list[int]:
        """With steps_per_epoch (validation_steps) Keras runs whole executions, past the count asked for and
        past the end of finite data, so the choice must divide those counts."""
        bounds = []
        batch_size = self.arguments.get("batch_size")
        if self.arguments.get("steps_per_epoch"):
            bounds.append(int(self.arguments["steps_per_epoch"]))
            available = batch_count(self.data.get("x"), batch_size, self.arguments.get("validation_split") or 0.0)
            if available:
                bounds.append(available)
        if self.arguments.get("validation_steps") and self.data.get("validation_data") is not None:
            bounds.append(int(self.arguments["validation_steps"]))
            available = batch_count(validation_x(self.data["validation_data"]), batch_size)
            if available:
                bounds.append(available)
        return bounds

    @property
    def execution_estimate_s(self) -> float:
        if self.step_s is None or self.steps_per_execution is None:
            return 0.0
        return self.step_s * self.steps_per_execution

    @property
    def batch_event_interval_s(self) -> float:
        return batch_event_interval_s(self.event_interval_s, self.execution_estimate_s)

    # --- between compile and fit --------------------------------------------------------------------

    def apply(self, model: keras.Model) -> None:
        """Set the chosen values on the compiled model (its compile config keeps the user's, so checkpoints
        and the exported model.keras carry what the user asked for)."""
        if not self.enabled:
            return
        if self.steps_per_execution is not None:
            model.steps_per_execution = self.steps_per_execution
        self._maybe_xla(model)
        self.record = self._record(model)
        self._log_event("tuning: " + self._summary())

    def _maybe_xla(self, model: keras.Model) -> None:
        if "jit_compile" in self.user_set:
            self.notes.append(f"jit_compile={model.jit_compile} as the job set it")
            return
        default = bool(model.jit_compile)
        estimate = self._fit_seconds_estimate()
        why_not = self._xla_obstacle(model, estimate)
        if why_not:
            self.notes.append(f"jit_compile stays {default} (Keras's default here): {why_not}")
            return
        x = sample_inputs(self._original_data["x"], self.arguments.get("batch_size"))
        y = sample_targets(self._original_data, self.arguments.get("batch_size"))
        try:
            trial = xla_trial(model, x, y)
        except Exception as exc:
            self.notes.append(f"jit_compile stays {default}: the XLA trial failed ({type(exc).__name__}: {exc})")
            return
        choice = choose_jit_compile(trial["step_ms"], identical=trial["identical"], default=default)
        self.trial = {**trial, "speedup": round(choice.speedup, 3)}
        if choice.jit_compile is not None:
            self.jit_compile = choice.jit_compile
            model.jit_compile = self.jit_compile
        self.notes.append(choice.note)

    def _fit_seconds_estimate(self) -> float | None:
        epochs = int(self.arguments.get("epochs", 1)) - int(self.arguments.get("initial_epoch", 0))
        return fit_seconds(self.step_s, steps_per_epoch=self._steps_per_epoch(), epochs=epochs)

    def _xla_obstacle(self, model: keras.Model, estimate: float | None) -> str | None:
        if keras.backend.backend() in NOT_TRIED:
            return NOT_TRIED[keras.backend.backend()]
        if compat.distribute_strategy(model) is not None or self.request.distribution:
            return "not tried with a distribution strategy"
        if not compat.model_supports_jit(model):
            return "this model (or op determinism, which a seed turns on) does not support XLA"
        return xla_trial_obstacle(estimate, min_fit_s=self.xla_trial_min_fit_s)

    # --- what the job records ------------------------------------------------------------------------

    def _record(self, model: keras.Model) -> dict[str, Any]:
        record: dict[str, Any] = {
            "enabled": True,
            "steps_per_execution": int(model.steps_per_execution),
            "jit_compile": bool(model.jit_compile),
            "tuned": [
                name
                for name, value in (
                    ("steps_per_execution", self.steps_per_execution),
                    ("jit_compile", self.jit_compile),
                )
                if value is not None
            ],
            "user_set": sorted(self.user_set),
        }
        if self.step_s is not None:
            record["estimated_step_ms" if self.step_estimated else "measured_step_ms"] = round(self.step_s * 1e3, 3)
        if self.execution_estimate_s:
            record["execution_s"] = round(self.execution_estimate_s, 4)
        if self.trial is not None:
            record["xla_trial"] = self.trial
        if self.input_changes:
            record["inputs"] = self.input_changes
        if self.notes:
            record["notes"] = self.notes
        return record

    def _summary(self) -> str:
        parts = [f"steps_per_execution={self.record['steps_per_execution']}"]
        if self.step_s is not None and self.steps_per_execution is not None:
            how = "estimated" if self.step_estimated else "measured"
            parts[0] += (
                f" (a step {how} {self.step_s * 1e3:.2f} ms: executions of about "
                f"{self.execution_estimate_s * 1e3:.0f} ms)"
            )
        parts.append(f"jit_compile={self.record['jit_compile']}")
        return "; ".join(parts + self.input_changes + self.notes)

    def outcome(self) -> dict[str, Any]:
        return {"tuning": self.record}
