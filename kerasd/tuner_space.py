"""KerasTuner's hyperparameters as a kerasd sweep's space and back: each `hp.Int`/`Float`/`Choice`/`Boolean` as a
dimension the server's sweep draws from, the sweep's values as a `HyperParameters`, and a trial as KerasTuner
shows it (kerasd/tuner.py runs the search with these)."""

from __future__ import annotations

from typing import Any

from keras_tuner import HyperParameters, Objective

# KerasTuner's own helper, not in its public namespace (keras-tuner is bound below 1.5 in kerasd[tuner]).
from keras_tuner.src.engine.objective import create_objective


class Trial:
    """A trial as KerasTuner shows it (`trial_id`, `hyperparameters`, `score`, `status`, `message`), with its
    kerasd job (None for a trial whose model could not be built or whose job was refused)."""

    def __init__(
        self,
        number: int,
        hyperparameters: HyperParameters,
        job_id: str | None = None,
        status: str = "RUNNING",
        score: float | None = None,
        message: str | None = None,
    ) -> None:
        self.number = number
        self.trial_id = f"{number:02d}"
        self.hyperparameters = hyperparameters
        self.job_id = job_id
        self.status = status
        self.score = score
        self.message = message

    def __repr__(self) -> str:
        return f"<kerasd.tuner.Trial {self.trial_id} {self.status} score={self.score} job={self.job_id}>"


def direction(objective: Objective) -> str:
    """KerasTuner's direction (`min`, `max`) as a sweep's (`minimize`, `maximize`)."""
    return "maximize" if objective.direction == "max" else "minimize"


def objective_of(objective: Any) -> Objective:
    """KerasTuner's own reading of `objective` (a metric name's direction inferred as it infers it)."""
    found = create_objective(objective)
    if not isinstance(found, Objective):
        raise ValueError(f"objective {objective!r}: give a metric name or keras_tuner.Objective(name, direction)")
    return found


def dimension(hp: Any) -> dict[str, Any] | None:
    """A KerasTuner hyperparameter as a dimension of a sweep's space (None for `Fixed`: it is not searched)."""
    kind = type(hp).__name__
    if kind == "Fixed":
        return None
    if kind == "Boolean":
        return {"choice": [False, True]}
    if kind == "Choice":
        return {"choice": list(hp.values)}
    if kind in ("Int", "Float"):
        sampling = hp.sampling or "linear"
        if sampling == "linear" and kind == "Int":
            step = int(hp.step or 1)
            # Optuna's int steps count from low and stop at or below high, as KerasTuner's do.
            found: dict[str, Any] = {
                "int_uniform": [hp.min_value, hp.min_value + (hp.max_value - hp.min_value) // step * step]
            }
            return {**found, "step": step} if step != 1 else found
        if sampling == "linear":
            found = {"uniform": [hp.min_value, hp.max_value]}
            return {**found, "step": hp.step} if hp.step is not None else found
        if kind == "Float" and sampling == "log" and hp.step is None:
            return {"log_uniform": [hp.min_value, hp.max_value]}
        # Log steps and reverse-log sampling have no Optuna distribution: their values, as KerasTuner lists them.
        values = sorted(set(hp.values))
        if len(values) > 1000:
            raise ValueError(
                f"hyperparameter {hp.name!r}: {sampling} sampling with {len(values)} values; give it "
                "a step that leaves at most 1000, or use linear sampling"
            )
        return {"choice": values}
    raise TypeError(f"hyperparameter {hp.name!r}: kerasd.tuner does not know KerasTuner's {kind}")


def space_of(hyperparameters: HyperParameters, tuned: set[str] | None) -> dict[str, Any]:
    """The sweep's space: each searched hyperparameter by name (only those in `tuned`, when it is given)."""
    found = {}
    for hp in hyperparameters.space:
        if tuned is not None and hp.name not in tuned:
            continue
        described = dimension(hp)
        if described is not None and hp.name not in found:
            found[hp.name] = described
    return found


def values_for(space: HyperParameters, chosen: dict[str, Any]) -> HyperParameters:
    """The space with the sweep's values where it chose one (the default elsewhere), active values only."""
    hp = space.copy()
    hp.values = {}
    for item in hp.space:  # parents come before their conditional children in KerasTuner's space
        if hp.is_active(item):
            hp.values[item.name] = chosen.get(item.name, item.default)
    return hp
