"""Sweeps' Optuna studies: where they are stored, the sampler and pruner of a sweep, ask, report and tell.

The search is Optuna's (DESIGN.md §15), its studies kept in kerasd's database through Optuna's RDBStorage on the
same URL. Optuna creates its tables itself and versions them with its own Alembic history, whose `alembic_version`
table would be ours: on PostgreSQL they live in the schema `optuna` (made by our migration 0012; the connection's
search_path points there), on SQLite, which has no schemas, in a file beside the database. Samplers and pruners
hold no state of their own between calls (the study is in SQL), so each process builds them again from the sweep's
plan whenever it asks, reports or tells.
"""

from __future__ import annotations

import functools
import logging
import math
from decimal import Decimal
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState

from app.core.settings import get_settings

log = logging.getLogger("kerasd.sweeps")
optuna.logging.set_verbosity(optuna.logging.WARNING)
SCHEMA = "optuna"


def storage_target(database_url: str) -> tuple[str, dict[str, Any]]:
    """(Optuna's storage URL, its engine arguments) for kerasd's database URL."""
    if database_url.startswith("sqlite"):
        return database_url + ".optuna", {"connect_args": {"timeout": 30}}
    return database_url, {"pool_pre_ping": True, "pool_size": 2, "max_overflow": 4,
                          "connect_args": {"options": f"-csearch_path={SCHEMA}"}}


@functools.lru_cache
def storage(database_url: str | None = None) -> optuna.storages.RDBStorage:
    """The process's one Optuna storage (its own small pool of connections)."""
    url, engine_kwargs = storage_target(database_url or get_settings().resolved_database_url)
    return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)


def distribution(dimension: dict[str, Any]) -> BaseDistribution:
    """One dimension of a plan's space (app/sweeps/spaces.py) as Optuna's distribution."""
    kind = dimension["kind"]
    if kind == "choice":
        return CategoricalDistribution(dimension["choices"])
    if kind == "int_uniform":
        return IntDistribution(dimension["low"], dimension["high"], step=dimension.get("step") or 1)
    return FloatDistribution(dimension["low"], dimension["high"], log=kind == "log_uniform",
                             step=dimension.get("step"))


def distributions(plan: dict[str, Any]) -> dict[str, BaseDistribution]:
    return {dimension["path"]: distribution(dimension) for dimension in plan["space"]}


def sampler(plan: dict[str, Any], *, asked_before: int) -> optuna.samplers.BaseSampler:
    """The sweep's sampler. A seeded sampler is built again for every step, so the seed of a random or TPE sampler
    moves on with the number of trials asked before (the same seed each time would draw the same point each time).
    A grid sampler keeps its seed: it shuffles the grid with it and gives trial n the grid's n-th point, so every
    step must shuffle alike."""
    seed = plan.get("seed")
    algorithm = plan["algorithm"]
    if algorithm == "grid":
        return optuna.samplers.GridSampler({d["path"]: grid_values(d) for d in plan["space"]}, seed=seed)
    seed = None if seed is None else seed + asked_before
    if algorithm == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    return optuna.samplers.RandomSampler(seed=seed)


def pruner(plan: dict[str, Any]) -> optuna.pruners.BasePruner:
    rule = plan["early_stopping"]
    kind = rule["rule"]
    if kind == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=rule["startup_trials"],
                                           n_warmup_steps=rule["warmup_epochs"])
    if kind == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=rule["min_epochs"],
                                                      reduction_factor=rule["reduction_factor"])
    if kind == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=rule["min_epochs"], max_resource=plan["max_epochs"],
                                              reduction_factor=rule["reduction_factor"])
    return optuna.pruners.NopPruner()


def create_study(*, name: str, direction: str) -> None:
    optuna.create_study(storage=storage(), study_name=name, direction=direction)


def load(plan: dict[str, Any], name: str, *, asked_before: int = 0, asking: bool = True) -> optuna.Study:
    """The sweep's study with its pruner, and its sampler when `asking` (a GridSampler told the end of the grid's
    last trial outside `optimize` would call `study.stop()`, which raises there: reports and tells need none)."""
    chosen = sampler(plan, asked_before=asked_before) if asking else optuna.samplers.RandomSampler()
    return optuna.load_study(study_name=name, storage=storage(), sampler=chosen, pruner=pruner(plan))


def ask(study: optuna.Study, plan: dict[str, Any]) -> optuna.trial.Trial:
    """A new trial with a value for every dimension of the plan's space."""
    return study.ask(distributions(plan))


def grid_count(dimension: dict[str, Any]) -> int | None:
    """How many values a dimension has on a grid; None for a continuous range (a float range without a step)."""
    kind, step = dimension["kind"], dimension.get("step")
    if kind == "choice":
        return len(dimension["choices"])
    if kind == "int_uniform":
        return (dimension["high"] - dimension["low"]) // int(step or 1) + 1
    if kind == "uniform" and step:
        return int((Decimal(str(dimension["high"])) - Decimal(str(dimension["low"]))) // Decimal(str(step))) + 1
    return None


def grid_values(dimension: dict[str, Any]) -> list[Any]:
    """A dimension's values on a grid, as KerasTuner's GridSearch lists them: a choice's values, an int range from
    low by its step (1 without one) up to high, a float range with a step likewise (counted in decimals, so that
    0.1 + 3 * 0.1 is 0.4, the value Optuna's stepped distribution holds). ValueError for a continuous range."""
    count = grid_count(dimension)
    if count is None:
        raise ValueError(f"{dimension['path']}: a {dimension['kind']} range without a step has no grid")
    if dimension["kind"] == "choice":
        return list(dimension["choices"])
    if dimension["kind"] == "int_uniform":
        step = int(dimension.get("step") or 1)
        return [dimension["low"] + index * step for index in range(count)]
    low, step = Decimal(str(dimension["low"])), Decimal(str(dimension["step"]))
    return [float(low + index * step) for index in range(count)]


def grid_size(plan: dict[str, Any]) -> int:
    return math.prod(grid_count(dimension) or 0 for dimension in plan["space"])


def report(plan: dict[str, Any], name: str, *, trial_id: int, epoch: int, value: float) -> bool:
    """Record an epoch's objective value for the trial; whether its pruner says to stop it now."""
    trial = optuna.trial.Trial(load(plan, name, asking=False), trial_id)
    trial.report(value, step=epoch)
    return trial.should_prune()


RUNNING = TrialState.RUNNING
# How a job's end is told to its trial's study.
STATES = {"succeeded": TrialState.COMPLETE, "pruned": TrialState.PRUNED}


def tell(plan: dict[str, Any], name: str, *, number: int, status: str, value: float | None) -> None:
    """The trial's end: complete with its objective, pruned (Optuna keeps its last reported value), or failed
    (a failed or cancelled job, or a finished one without the objective's metric). Told once; again is a no-op."""
    tell_in(load(plan, name, asking=False), number=number, status=status, value=value)


def tell_in(study: optuna.Study, *, number: int, status: str, value: float | None) -> None:
    """`tell` through a study already loaded (a scheduler step tells and asks through one). Its sampler is set
    aside meanwhile: a GridSampler told the end of the grid's last trial calls `study.stop()`, which raises outside
    `optimize` (a random or TPE sampler does nothing at a tell)."""
    state = STATES.get(status, TrialState.FAIL)
    if state == TrialState.COMPLETE and value is None:
        state = TrialState.FAIL
    chosen, study.sampler = study.sampler, _TELLING
    try:
        study.tell(number, value if state == TrialState.COMPLETE else None, state=state, skip_if_finished=True)
    finally:
        study.sampler = chosen


_TELLING = optuna.samplers.RandomSampler()


def to_ask(study: optuna.Study, plan: dict[str, Any], *, asked_before: int) -> optuna.Study:
    """The study, loaded once for a step's tells, given the sweep's sampler for its asks."""
    study.sampler = sampler(plan, asked_before=asked_before)
    return study


def ask_with(plan: dict[str, Any], name: str, dimensions: list[dict[str, Any]], *,
             asked_before: int) -> optuna.trial.Trial:
    """A new trial of a client sweep, with a value for each dimension of the space the client declared now."""
    study = load(plan, name, asked_before=asked_before)
    return study.ask({dimension["path"]: distribution(dimension) for dimension in dimensions})


def trial_of(name: str, number: int) -> FrozenTrial | None:
    """The study's trial by its number (its state and values); None if the study has no such trial."""
    store = storage()
    try:
        trial_id = store.get_trial_id_from_study_id_trial_number(store.get_study_id_from_name(name), number)
    except KeyError:
        return None
    return store.get_trial(trial_id)


def running_trials(name: str) -> list[FrozenTrial]:
    """The study's trials asked for and not yet told (a client sweep's pending asks among them)."""
    store = storage()
    return store.get_all_trials(store.get_study_id_from_name(name), deepcopy=False, states=(TrialState.RUNNING,))
