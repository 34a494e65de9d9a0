"""`kerasd.tuner`: KerasTuner's tuners (`RandomSearch`, `BayesianOptimization`, `Hyperband`) whose trials are jobs
of a kerasd sweep. Your `build_model(hp)` (or `HyperModel`) and KerasTuner's own `HyperParameters` run here; the
server's sweep (Optuna) chooses the values; each trial's model is built here with them and sent as its architecture
(no code goes to the server). Needs `pip install "kerasd[tuner]"`.

    import kerasd.tuner as kt                                   # was: import keras_tuner as kt
    tuner = kt.RandomSearch(build_model, objective="val_accuracy", max_trials=10,
                            client=kerasd.Client(url, api_key=...), max_concurrent_trials=4)
    tuner.search(x, y, epochs=5, validation_data=(x_val, y_val))
    best = tuner.get_best_models(1)[0]                          # a local Keras model with the trained weights

Algorithms map to Optuna: RandomSearch is its RandomSampler, BayesianOptimization its TPESampler, Hyperband its
RandomSampler with its HyperbandPruner (`max_epochs`, `factor` as the pruner's max resource and reduction factor).
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import keras
from keras_tuner import HyperModel, HyperParameters, Objective
from keras_tuner.errors import FailedTrialError, FatalError

# KerasTuner's own helper, not in its public namespace (keras-tuner is bound below 1.5 in kerasd[tuner]).
from keras_tuner.src.engine.hypermodel import get_hypermodel

from kerasd.errors import Conflict, NotFound
from kerasd.remote import RemoteModel
from kerasd.remote import arguments as translate
from kerasd.remote.uploads import Uploader
from kerasd.tuner_results import TunerResults
from kerasd.tuner_space import Trial, dimension, direction, objective_of, space_of, values_for

__all__ = ["BayesianOptimization", "HyperModel", "HyperParameters", "Hyperband", "Objective", "RandomSearch",
           "Trial", "Tuner", "dimension", "values_for"]

log = logging.getLogger("kerasd.tuner")
ENDED = {"succeeded", "failed", "cancelled", "pruned"}
STATE_FILE = "kerasd_sweep.json"
# What the server keeps of why a trial failed without a job (its reason under the sweep's `failed_asks`).
REASON_CHARS = 500


class Tuner(TunerResults):
    """KerasTuner's `Tuner`, its trials run as jobs of one kerasd sweep (`space_from: client`). Takes KerasTuner's
    arguments, plus `client` (a `kerasd.Client`) and `max_concurrent_trials` (trials queued or running at once)."""

    algorithm = "random"

    def __init__(self, hypermodel: Any = None, objective: Any = None, max_trials: int = 10, *, client: Any,
                 max_concurrent_trials: int = 1, seed: int | None = None,
                 hyperparameters: HyperParameters | None = None, tune_new_entries: bool = True,
                 allow_new_entries: bool = True, max_retries_per_trial: int = 0,
                 max_consecutive_failed_trials: int = 3, directory: str | Path | None = None,
                 project_name: str | None = None, overwrite: bool = False, executions_per_trial: int = 1,
                 optimizer: Any = None, loss: Any = None, metrics: Any = None, poll_interval: float = 0.5,
                 **kwargs: Any) -> None:
        if hypermodel is None and type(self).build is Tuner.build:  # KerasTuner's own message
            raise ValueError("Received `hypermodel=None`. We only allow not specifying `hypermodel` if the user "
                             "defines the search space in `Tuner.build()`.")
        if executions_per_trial != 1:
            raise ValueError("kerasd.tuner runs one execution per trial; for repeats, raise max_trials")
        if isinstance(objective, list):
            raise ValueError("kerasd.tuner takes one objective; a sweep optimizes one metric")
        ignored = set(kwargs) - {"distribution_strategy", "logger", "tuner_id", "max_model_size"}
        if ignored:
            raise TypeError(f"unexpected keyword argument {sorted(ignored)[0]!r}")
        self.hypermodel = get_hypermodel(hypermodel)
        self._objective_given = objective
        self.objective: Objective | None = None if objective is None else objective_of(objective)
        self.max_trials = max_trials
        self.client = client
        self.max_concurrent_trials = max(1, int(max_concurrent_trials))
        self.seed = seed
        self.tune_new_entries = tune_new_entries
        self.allow_new_entries = allow_new_entries
        self.max_retries_per_trial = max_retries_per_trial
        self.max_consecutive_failed_trials = max_consecutive_failed_trials
        self.directory = str(directory) if directory is not None else "."
        self.project_name = project_name or "untitled_project"
        self.overwrite = overwrite
        self._compile_override = {"optimizer": optimizer, "loss": loss, "metrics": metrics}
        self.poll_interval = poll_interval
        self.hyperparameters = hyperparameters.copy() if hyperparameters is not None else HyperParameters()
        self._tuned = {hp.name for hp in self.hyperparameters.space} if not tune_new_entries else None
        self.sweep_id: str | None = None
        self.trials: dict[int, Trial] = {}
        self._input_shape: tuple[Any, ...] | None = None
        self._workdir = tempfile.TemporaryDirectory(prefix="kerasd-tuner-")
        self._load_state()
        self._build(values_for(self.hyperparameters, {}))  # KerasTuner's first build: the space as declared

    # --- what subclasses and users override (KerasTuner's hooks) -------------------------------------------------

    def build(self, hp: HyperParameters) -> Any:
        if self.hypermodel is None:
            raise NotImplementedError("give a hypermodel or override Tuner.build(hp)")
        return self.hypermodel.build(hp)

    def on_search_begin(self) -> None: ...

    def on_trial_begin(self, trial: Trial) -> None: ...

    def on_trial_end(self, trial: Trial) -> None: ...

    def on_search_end(self) -> None: ...

    # --- the sweep ---------------------------------------------------------------------------------------------

    @property
    def project_dir(self) -> Path:
        return Path(self.directory) / self.project_name

    def _load_state(self) -> None:
        """`overwrite=False` with a project already searched: its sweep goes on (KerasTuner's reload)."""
        path = self.project_dir / STATE_FILE
        if self.overwrite or not path.is_file():
            return
        state = json.loads(path.read_text())
        try:
            self.client.sweeps.get(state["sweep_id"])
        except NotFound:
            return
        self.sweep_id = state["sweep_id"]
        self.hyperparameters.merge(HyperParameters.from_config(state["space"]), overwrite=False)
        if state.get("objective") and self.objective is None:
            self.objective = Objective(state["objective"]["name"], state["objective"]["direction"])
        self._input_shape = tuple(state["input_shape"]) if state.get("input_shape") else None

    def _save_state(self) -> None:
        self.project_dir.mkdir(parents=True, exist_ok=True)
        (self.project_dir / STATE_FILE).write_text(json.dumps({
            "sweep_id": self.sweep_id, "space": self.hyperparameters.get_config(),
            "objective": {"name": self.objective.name, "direction": self.objective.direction},
            "input_shape": list(self._input_shape) if self._input_shape else None}, default=str))

    def _sweep_options(self) -> dict[str, Any]:
        return {}

    def _ensure_sweep(self) -> str:
        if self.sweep_id is None:
            assert self.objective is not None
            body = {"name": self.project_name, "space_from": "client", "algorithm": self.algorithm,
                    "objective": {"metric": self.objective.name, "direction": direction(self.objective)},
                    "budget": {"max_trials": self.max_trials, "max_concurrent": self.max_concurrent_trials},
                    **self._sweep_options()}
            if self.seed is not None:
                body["seed"] = self.seed
            self.sweep_id = self.client.sweeps.create(body)["id"]
        self._save_state()
        return self.sweep_id

    # --- a trial -----------------------------------------------------------------------------------------------

    def _build(self, hp: HyperParameters) -> Any:
        model = self.build(hp)
        if not self.allow_new_entries and any(not self.hyperparameters._exists(p.name, p.conditions)
                                              for p in hp.space):
            raise RuntimeError("`allow_new_entries` is `False`, but build_model declared new hyperparameters")
        self.hyperparameters.merge(hp, overwrite=False)
        return model

    def _model_for(self, hp: HyperParameters) -> Any:
        model = self._build(hp)
        if not isinstance(model, keras.Model):
            raise TypeError(f"build_model must return a keras.Model; it returned {type(model).__name__}")
        if not model.built and self._input_shape is not None and hasattr(model, "add"):
            model.build((None, *self._input_shape))
        return model

    def _compile_of(self, model: Any) -> dict[str, Any]:
        override = self._compile_override
        if override["loss"] is not None or override["optimizer"] is not None:
            model.compile(optimizer=override["optimizer"] or "rmsprop", loss=override["loss"],
                          metrics=override["metrics"])
        given = getattr(getattr(model, "_compile_config", None), "config", None)
        if not getattr(model, "compiled", False) or given is None:
            raise ValueError("build_model returned a model that is not compiled: call model.compile(...) in it, or "
                             "give the tuner optimizer= and loss=")
        return translate.compile_document(
            optimizer=given.get("optimizer"), loss=given.get("loss"), loss_weights=given.get("loss_weights"),
            metrics=given.get("metrics"), weighted_metrics=given.get("weighted_metrics"),
            run_eagerly=bool(given.get("run_eagerly")), steps_per_execution=given.get("steps_per_execution", 1),
            jit_compile=given.get("jit_compile", "auto"), removed={})

    def _start_trial(self, fit: dict[str, Any], callbacks: list[dict[str, Any]]) -> Trial | None:
        """A new trial of the sweep with its job submitted; a FAILED trial (not running) when its model could not be
        built or its job was refused, told to the sweep; None once the sweep's budget is spent."""
        try:
            asked = self.client.sweeps.ask(self.sweep_id, space_of(self.hyperparameters, self._tuned))
        except Conflict:
            return None  # the sweep's budget is spent (or it ended)
        hp = values_for(self.hyperparameters, asked["params"])
        trial = Trial(asked["number"], hp)
        self.trials[trial.number] = trial
        # KerasTuner runs a trial whose build raised again (`max_retries_per_trial`), fails it at once for a
        # FailedTrialError, and lets a FatalError end the search (keras_tuner/engine/base_tuner.py, oracle.py).
        for tries_left in range(self.max_retries_per_trial, -1, -1):
            try:
                trial.job_id = self._submit(trial, fit, callbacks)
                return trial
            except FatalError as error:
                self._tell_failed(trial, error)
                raise
            except Exception as error:  # what build_model, compile or the server raised: the trial fails
                if tries_left and not isinstance(error, FailedTrialError):
                    log.warning("trial %s failed (%s); %d retries left", trial.trial_id, error, tries_left)
                    continue
                self._tell_failed(trial, error)
        return trial

    def _submit(self, trial: Trial, fit: dict[str, Any], callbacks: list[dict[str, Any]]) -> str:
        """The trial's model built with its values, uploaded, and its job submitted: the job's id."""
        model = self._model_for(trial.hyperparameters.copy())
        body: dict[str, Any] = {"kind": "fit", "model_id": RemoteModel(self.client, model).model_id,
                                "compile": self._compile_of(model), "fit": fit,
                                "name": f"{self.project_name} trial {trial.number}"}
        if callbacks:
            body["callbacks"] = callbacks
        return self.client.sweeps.submit_trial(self.sweep_id, trial.number, body)["id"]

    def _tell_failed(self, trial: Trial, error: BaseException) -> None:
        """The trial FAILED, with KerasTuner's message (the traceback); the sweep is told why, which frees its place
        and lets the sweep's search know the values failed."""
        trial.status, trial.message = "FAILED", traceback.format_exc()
        reason = f"{type(error).__name__}: {error}"
        log.warning("trial %s failed: %s", trial.trial_id, reason)
        try:
            self.client.sweeps.fail_trial(self.sweep_id, trial.number, reason[:REASON_CHARS])
        except (Conflict, NotFound):
            pass  # the sweep ended meanwhile, or the trial was already told

    def _finish(self, trial: Trial, job: dict[str, Any]) -> None:
        trial.score = self._score(job)
        trial.status = {"succeeded": "COMPLETED", "pruned": "STOPPED", "cancelled": "STOPPED"}.get(
            job["status"], "FAILED")
        if trial.status == "FAILED":
            error = job.get("error") or {}
            trial.message = f"job {job['id']} ended {job['status']}: {error.get('message') or error or '-'}"

    def _ended(self, trial: Trial, failed_in_a_row: int) -> int:
        """KerasTuner's end of a trial: its hook, then the search stops with a RuntimeError once
        `max_consecutive_failed_trials` trials failed in a row. The failures in a row now."""
        failed_in_a_row = failed_in_a_row + 1 if trial.status == "FAILED" else 0
        self.on_trial_end(trial)
        if failed_in_a_row >= self.max_consecutive_failed_trials:
            raise RuntimeError("Number of consecutive failures exceeded the limit of "
                               f"{self.max_consecutive_failed_trials}.\n{trial.message or ''}")
        return failed_in_a_row

    # --- KerasTuner's API ----------------------------------------------------------------------------------------

    def search(self, *fit_args: Any, **fit_kwargs: Any) -> None:
        """`tuner.search(x, y, epochs=..., validation_data=..., callbacks=[...])`: trials run as jobs of the
        sweep, `max_concurrent_trials` at once, until its `max_trials` are spent. Called again (or by a new tuner
        of the same `directory`/`project_name`), it goes on with the same sweep."""
        names = ("x", "y", "batch_size", "epochs")
        fit_kwargs.update(dict(zip(names, fit_args, strict=False)))
        x, y = fit_kwargs.pop("x", None), fit_kwargs.pop("y", None)
        callbacks = translate.callback_specs(fit_kwargs.pop("callbacks", None))
        fit_kwargs.pop("verbose", None)
        if self.objective is None:
            name = "val_loss" if fit_kwargs.get("validation_data") is not None or \
                fit_kwargs.get("validation_split") else "loss"
            self.objective = Objective(name, "min")
        epochs = self._epochs(fit_kwargs.pop("epochs", 1))
        if self._input_shape is None and hasattr(x, "shape") and len(x.shape) >= 2:
            self._input_shape = tuple(int(d) for d in x.shape[1:])
        optional = {key: fit_kwargs.pop(key) for key in ("batch_size", "validation_split", "shuffle",
                                                         "initial_epoch", "steps_per_epoch", "validation_steps",
                                                         "validation_freq") if key in fit_kwargs}
        fit = translate.fit_arguments(
            Uploader(self.client, 0), x, y, epochs=epochs, sample_weight=fit_kwargs.pop("sample_weight", None),
            class_weight=fit_kwargs.pop("class_weight", None),
            validation_data=fit_kwargs.pop("validation_data", None),
            **{"batch_size": None, "validation_split": 0.0, "shuffle": True, "initial_epoch": 0,
               "steps_per_epoch": None, "validation_steps": None, "validation_freq": 1, **optional})
        if fit_kwargs:
            raise TypeError(f"search() got an unexpected keyword argument {sorted(fit_kwargs)[0]!r}")
        self._ensure_sweep()
        self.on_search_begin()
        running = self._still_running()
        spent = False
        failed_in_a_row = 0
        while True:
            while not spent and len(running) < self.max_concurrent_trials:
                trial = self._start_trial(fit, [spec for spec, _path in callbacks])
                if trial is None:
                    spent = True
                    break
                self.on_trial_begin(trial)
                if trial.status == "FAILED":  # never submitted: it ends here and frees its place at once
                    failed_in_a_row = self._ended(trial, failed_in_a_row)
                    continue
                running[trial.number] = trial
            self._save_state()
            if not running:
                break
            time.sleep(self.poll_interval)
            for number, trial in list(running.items()):
                job = self.client.jobs.get(trial.job_id)
                if job["status"] not in ENDED:
                    continue
                del running[number]
                self._finish(trial, job)
                failed_in_a_row = self._ended(trial, failed_in_a_row)
        self.on_search_end()

    def _epochs(self, epochs: int) -> int:
        return epochs

    def _still_running(self) -> dict[int, Trial]:
        """The sweep's trials an earlier search left queued or running (it was stopped): followed to their end."""
        found = {}
        for row in self.client.sweeps.get(self.sweep_id)["trials"]:
            if row["status"] in ("queued", "running"):
                trial = self.trials.get(row["number"]) or Trial(
                    row["number"], values_for(self.hyperparameters, row["params"]), job_id=row["job_id"])
                self.trials[trial.number] = found[trial.number] = trial
        return found

class RandomSearch(Tuner):
    """KerasTuner's RandomSearch: Optuna's RandomSampler chooses each trial's values."""

    algorithm = "random"


class BayesianOptimization(Tuner):
    """KerasTuner's BayesianOptimization (a Gaussian process there): here Optuna's TPESampler, its Bayesian
    optimization. `num_initial_points`, `alpha` and `beta` are the Gaussian process's and are not used."""

    algorithm = "tpe"

    def __init__(self, hypermodel: Any = None, objective: Any = None, max_trials: int = 10,
                 num_initial_points: int | None = None, alpha: float = 1e-4, beta: float = 2.6,
                 seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(hypermodel, objective, max_trials, seed=seed, **kwargs)


class Hyperband(Tuner):
    """KerasTuner's Hyperband: every trial may train `max_epochs`, and Optuna's HyperbandPruner (minimum 1 epoch,
    maximum `max_epochs`, reduction factor `factor`) stops the unpromising ones at the end of an epoch (they end
    `pruned`, their weights kept). Its trials are as many as KerasTuner's brackets hold, `hyperband_iterations`
    times (or `max_trials`)."""

    algorithm = "random"

    def __init__(self, hypermodel: Any = None, objective: Any = None, max_epochs: int = 100, factor: int = 3,
                 hyperband_iterations: int = 1, seed: int | None = None, max_trials: int | None = None,
                 **kwargs: Any) -> None:
        self.max_epochs = int(max_epochs)
        self.factor = int(factor)
        if max_trials is None:
            s_max = int(math.log(self.max_epochs, self.factor) + 1e-9)
            brackets = sum(math.ceil((s_max + 1) / (s + 1) * self.factor ** s) for s in range(s_max + 1))
            max_trials = brackets * max(1, int(hyperband_iterations))
        super().__init__(hypermodel, objective, max_trials, seed=seed, **kwargs)

    def _sweep_options(self) -> dict[str, Any]:
        return {"early_stopping": {"rule": "hyperband", "min_epochs": 1, "reduction_factor": self.factor},
                "max_epochs": self.max_epochs}

    def _epochs(self, epochs: int) -> int:
        return self.max_epochs
