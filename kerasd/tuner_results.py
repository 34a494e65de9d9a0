"""What a `kerasd.tuner` search found, as KerasTuner shows it: its trials ranked by score, the best hyperparameters
and models (built here by `build_model` with the trained weights of their jobs), and the summaries KerasTuner
prints. The sweep's trials are read from the server, so a new tuner of the same project finds them too."""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

from keras_tuner import HyperParameters, Objective

from kerasd.tuner_space import Trial, values_for


class TunerResults:
    """KerasTuner's result calls of a tuner (kerasd/tuner.py's `Tuner`, which holds the sweep, the client, the
    objective and the trials this view reads)."""

    sweep_id: str | None
    objective: Objective | None
    client: Any
    trials: dict[int, Trial]
    hyperparameters: HyperParameters
    _workdir: Any

    @property
    def project_dir(self) -> Path:
        raise NotImplementedError

    def _model_for(self, hp: HyperParameters) -> Any:
        raise NotImplementedError

    def _score(self, job: dict[str, Any]) -> float | None:
        """The best value of the objective's metric over the job's epochs (as KerasTuner scores a trial)."""
        assert self.objective is not None
        values = [
            float(v)
            for v in (job.get("history") or {}).get(self.objective.name, [])
            if isinstance(v, int | float) and math.isfinite(float(v))
        ]
        if not values:
            return None
        return max(values) if self.objective.direction == "max" else min(values)

    def _ranked(self) -> list[Trial]:
        """The sweep's trials with a score, best first (those of earlier searches of the sweep too)."""
        if self.sweep_id is None:
            return []
        assert self.objective is not None
        sweep = self.client.sweeps.get(self.sweep_id)
        ranked = []
        for row in sweep["trials"]:
            if row["status"] not in ("succeeded", "pruned"):
                continue
            trial = self.trials.get(row["number"])
            if trial is None or trial.score is None:
                hp = values_for(self.hyperparameters, row["params"])
                trial = Trial(
                    row["number"],
                    hp,
                    job_id=row["job_id"],
                    status="COMPLETED" if row["status"] == "succeeded" else "STOPPED",
                )
                trial.score = self._score(self.client.jobs.get(row["job_id"]))
                self.trials[trial.number] = trial
            if trial.score is not None:
                ranked.append(trial)
        return sorted(ranked, key=lambda t: t.score, reverse=self.objective.direction == "max")

    def get_best_trials(self, num_trials: int = 1) -> list[Trial]:
        return self._ranked()[:num_trials]

    def get_best_hyperparameters(self, num_trials: int = 1) -> list[HyperParameters]:
        return [trial.hyperparameters for trial in self.get_best_trials(num_trials)]

    def load_model(self, trial: Trial) -> Any:
        """The trial's model, built here by build_model with its values, with the weights its job trained."""
        model = self._model_for(trial.hyperparameters.copy())
        path = Path(self._workdir.name) / f"trial-{trial.number}.weights.h5"
        self.client.jobs.artifact(trial.job_id, "weights.h5", path, verbose=0)
        with warnings.catch_warnings():
            # The job's weights file carries its optimizer's state; a model fresh from build_model has none yet.
            warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
            model.load_weights(path)
        return model

    def get_best_models(self, num_models: int = 1) -> list[Any]:
        """The best trials' models, local Keras models with their trained weights (best first)."""
        return [self.load_model(trial) for trial in self.get_best_trials(num_models)]

    def search_space_summary(self, extended: bool = False) -> None:
        print("Search space summary")
        print(f"Default search space size: {len(self.hyperparameters.space)}")
        for hp in self.hyperparameters.space:
            config = hp.get_config()
            config.pop("name", None)
            print(f"{hp.name} ({type(hp).__name__})")
            print(config)

    def results_summary(self, num_trials: int = 10) -> None:
        print("Results summary")
        print(f"Results in sweep {self.sweep_id} ({self.project_dir})")
        print(f"Showing {num_trials} best trials")
        print(
            f'Objective(name="{self.objective.name}", direction="{self.objective.direction}")'
            if self.objective
            else "Objective: not set before a search"
        )
        for trial in self.get_best_trials(num_trials):
            print()
            print(f"Trial {trial.trial_id} summary (job {trial.job_id})")
            print("Hyperparameters:")
            for name, value in trial.hyperparameters.values.items():
                print(f"{name}: {value}")
            print(f"Score: {trial.score}")

    @property
    def oracle(self) -> TunerResults:
        """KerasTuner reaches the space and budget through `tuner.oracle`; here they are the tuner's own."""
        return self

    def get_space(self) -> HyperParameters:
        return self.hyperparameters.copy()
