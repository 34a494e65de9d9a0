"""A sweep as the user submits it (`SweepCreate`: a base job, a space of paths into it, an objective, an algorithm,
a budget, an early-stopping rule) and as the API answers it (`SweepOut`: status, trials with their values and
objectives, the best so far)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StringConstraints, model_validator

from app.experiments.schemas import JobName
from app.jobs.schemas import EXAMPLE_FIT_JOB, JobCreate

Number = StrictInt | float
ChoiceValue = str | StrictInt | float | bool | None
MAX_DIMENSIONS = 20
MAX_CHOICES = 1000
KINDS = ("uniform", "log_uniform", "int_uniform", "choice")


class Dimension(BaseModel):
    """One dimension of the space: exactly one of `uniform`, `log_uniform` ([low, high], floats), `int_uniform`
    ([low, high], whole numbers; `step` optional) or `choice` (a list of values)."""

    model_config = ConfigDict(extra="forbid")

    uniform: list[Number] | None = Field(default=None, min_length=2, max_length=2)
    log_uniform: list[Number] | None = Field(default=None, min_length=2, max_length=2)
    int_uniform: list[StrictInt] | None = Field(default=None, min_length=2, max_length=2)
    choice: list[ChoiceValue] | None = Field(default=None, min_length=1, max_length=MAX_CHOICES)
    step: Number | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _one_kind(self) -> Dimension:
        kinds = [name for name in KINDS if getattr(self, name) is not None]
        if len(kinds) != 1:
            raise ValueError("give exactly one of uniform, log_uniform, int_uniform ([low, high]) or choice ([...])")
        kind = kinds[0]
        if kind != "choice":
            low, high = getattr(self, kind)
            if not low < high:
                raise ValueError(f"{kind}: low ({low}) must be below high ({high})")
            if kind == "log_uniform" and low <= 0:
                raise ValueError(f"log_uniform: low ({low}) must be above 0")
        elif len({repr(value) for value in self.choice}) != len(self.choice):
            raise ValueError("choice: each value once")
        if self.step is not None and kind not in ("uniform", "int_uniform"):
            raise ValueError("step applies to uniform and int_uniform only")
        if self.step is not None and kind == "int_uniform" and not float(self.step).is_integer():
            raise ValueError("int_uniform: step must be a whole number")
        return self

    @property
    def kind(self) -> str:
        return next(name for name in KINDS if getattr(self, name) is not None)


class Objective(BaseModel):
    """What a trial is judged by: a metric its epochs log (`val_loss`, `val_accuracy`, ...) and whether lower or
    higher is better. A trial's objective is the best value of its epochs."""

    model_config = ConfigDict(extra="forbid")

    metric: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.\-/]+$", examples=["val_loss"])
    direction: Literal["minimize", "maximize"] = "minimize"


class Budget(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_trials: int = Field(ge=1, le=10_000, description="Trials in all (a grid sweep stops sooner at its grid's size)")
    max_concurrent: int = Field(default=2, ge=1, le=1000, description="Trials queued or running at once")
    time_limit_s: int | None = Field(default=None, ge=1, le=30 * 86_400,
                                     description="No new trial starts this long after the sweep was created; "
                                                 "trials already running finish")


EarlyStoppingRule = Literal["none", "median", "successive_halving", "hyperband"]


class EarlyStopping(BaseModel):
    """Optuna's pruner that stops unpromising trials at the end of an epoch (they end `pruned`, weights kept):
    `median` (MedianPruner), `successive_halving` (SuccessiveHalvingPruner, ASHA), `hyperband` (HyperbandPruner).
    Given as the rule's name alone, or with its settings."""

    model_config = ConfigDict(extra="forbid")

    rule: EarlyStoppingRule = "none"
    startup_trials: int = Field(default=5, ge=0, le=10_000,
                                description="median: trials that finish before any is pruned")
    warmup_epochs: int = Field(default=0, ge=0, le=100_000, description="median: epochs a trial runs before it "
                               "can be pruned")
    min_epochs: int = Field(default=1, ge=1, le=100_000, description="successive_halving, hyperband: the epochs "
                            "of the first rung")
    reduction_factor: int = Field(default=3, ge=2, le=100, description="successive_halving, hyperband: 1 of this "
                                  "many trials goes on at each rung")

    @model_validator(mode="before")
    @classmethod
    def _named(cls, value: Any) -> Any:
        return {"rule": value} if isinstance(value, str) else value


EXAMPLE_SWEEP = {
    "name": "lr-search",
    "job": EXAMPLE_FIT_JOB,
    "space": {"compile.optimizer.config.learning_rate": {"log_uniform": [1e-4, 1e-1]},
              "fit.batch_size": {"choice": [32, 64, 128]}},
    "objective": {"metric": "val_loss", "direction": "minimize"},
    "algorithm": "tpe",
    "budget": {"max_trials": 20, "max_concurrent": 4},
    "early_stopping": "median",
}
EXAMPLE_CLIENT_SWEEP = {"name": "kerastuner-mnist", "space_from": "client",
                        "objective": {"metric": "val_accuracy", "direction": "maximize"}, "algorithm": "tpe",
                        "budget": {"max_trials": 10, "max_concurrent": 2}}


class SweepCreate(BaseModel):
    """A hyperparameter search whose trials are fit jobs: the base `job` (as POST /v1/jobs takes it) with the
    values the search chooses put at the `space`'s paths: `compile.…` and `fit.…` into the job,
    `model.layers[i].…` into its model's (sequential) spec. With `space_from: "client"` there is no base job and
    no space here: the client declares the space with each trial it asks for and submits each trial's job."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [EXAMPLE_SWEEP, EXAMPLE_CLIENT_SWEEP]})

    name: JobName = None
    space_from: Literal["job", "client"] = Field(
        default="job", description="`job`: the server makes each trial's job from `job` and `space`. `client`: the "
        "client declares the space by name with each trial it asks for (POST /v1/sweeps/{id}/trials), builds the "
        "model with the values it gets and submits the trial's job (POST /v1/sweeps/{id}/trials/{number}/job), as "
        "`kerasd.tuner` does with a KerasTuner `build_model(hp)`; no code reaches the server.")
    # Typed without `| None` (omitted, not null, when absent): the document keeps `job` and `space` as the objects
    # clients generated from it already send.
    job: JobCreate = Field(  # type: ignore[assignment]
        default=None, description="The base job (needed with `space_from: job`; omitted with `client`)")
    space: dict[str, Dimension] = Field(  # type: ignore[assignment]
        default=None, min_length=1, max_length=MAX_DIMENSIONS,
        description="Paths into the base job (needed with `space_from: job`; omitted with `client`)")
    objective: Objective
    algorithm: Literal["random", "grid", "tpe"] = "random"
    budget: Budget
    early_stopping: EarlyStopping = Field(default_factory=EarlyStopping)
    seed: int | None = Field(default=None, ge=0, le=2**31 - 1,
                             description="The sampler's seed: the same sweep draws the same values")
    max_epochs: int | None = Field(default=None, ge=1, le=100_000,
                                   description="`space_from: client`: the most epochs a trial trains (the last rung "
                                               "of the hyperband rule; unknown, Optuna infers it from the first "
                                               "trial that completes)")

    @model_validator(mode="after")
    def _complete(self) -> SweepCreate:
        if self.space_from == "job":
            missing = [name for name in ("job", "space") if getattr(self, name) is None]
            if missing:
                raise ValueError(f"{' and '.join(missing)} missing: a sweep made from a job needs its base `job` and "
                                 "a `space` of paths into it (or `space_from: client` for a space the client "
                                 "declares with each trial)")
            if self.max_epochs is not None:
                raise ValueError("max_epochs is for `space_from: client`; a sweep made from a job trains its "
                                 "job's fit.epochs")
        else:
            given = [name for name in ("job", "space") if getattr(self, name) is not None]
            if given:
                raise ValueError(f"{given[0]}: a `space_from: client` sweep takes no base job or space; the client "
                                 "declares the space with each trial it asks for and submits each trial's job")
            if self.algorithm == "grid":
                raise ValueError("algorithm: grid needs the whole space up front; a `space_from: client` sweep "
                                 "takes random or tpe")
        return self


MAX_CLIENT_DIMENSIONS = 100
HyperparameterName = Annotated[str, StringConstraints(min_length=1, max_length=200,
                                                      pattern=r"^[A-Za-z0-9_.\-/:\[\] ]+$")]


class TrialAsk(BaseModel):
    """The space as the client's code declares it now (KerasTuner's `hp.Int`, `hp.Float`, `hp.Choice`,
    `hp.Boolean` as int_uniform, uniform or log_uniform, and choice dimensions), by hyperparameter name. It may
    grow from one ask to the next as the client's code declares more (conditional scopes)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"space": {
        "units": {"int_uniform": [32, 512], "step": 32}, "activation": {"choice": ["relu", "tanh"]},
        "dropout": {"choice": [False, True]}, "lr": {"log_uniform": [1e-4, 1e-2]}}}]})

    space: dict[HyperparameterName, Dimension] = Field(min_length=1, max_length=MAX_CLIENT_DIMENSIONS)


class TrialAsked(BaseModel):
    number: int = Field(description="The trial's number in the sweep: submit its job at "
                                    "POST /v1/sweeps/{id}/trials/{number}/job")
    params: dict[str, Any] = Field(description="The value the search chose for each dimension of the space")


class TrialFailure(BaseModel):
    """Why an asked trial of a client sweep will have no job: what building its model or submitting its job raised
    on the client."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"reason": "ValueError: Exception encountered when calling Dense.call(): negative dimensions"}]})

    reason: str = Field(min_length=1, max_length=500)


class FailedAsk(BaseModel):
    """A trial of a client sweep that was asked for and never got a job: reported failed by its client, or counted
    failed after waiting too long for its job. Its values count as failed for the sweep's search."""

    number: int
    params: dict[str, Any] = Field(description="The values the search chose for it")
    reason: str = Field(description="Why it has no job")
    failed_at: datetime


SweepStatus = Literal["running", "completed", "cancelled"]


class TrialOut(BaseModel):
    number: int
    job_id: str
    status: str = Field(description="The trial's job's status")
    params: dict[str, Any] = Field(description="The values the search chose, by path")
    objective: float | None = Field(description="The best value of the objective's metric over its epochs; null "
                                                "until it ended (and for a failed trial)")
    note: str | None = None


class SweepOut(BaseModel):
    id: str
    name: str | None
    status: SweepStatus
    algorithm: str
    objective: Objective
    budget: Budget
    early_stopping: EarlyStopping
    trials_created: int
    counts: dict[str, int] = Field(description="The trials by their jobs' status")
    best: TrialOut | None = Field(description="The trial with the best objective so far")
    trials: list[TrialOut]
    failed_asks: list[FailedAsk] = Field(default_factory=list, description="A client sweep's trials that were asked "
                                         "for and never got a job, with why (always empty for a sweep made from a "
                                         "job)")
    created_at: datetime
    finished_at: datetime | None
    request: dict[str, Any] = Field(description="The sweep as it was submitted")


class SweepSummary(BaseModel):
    id: str
    name: str | None
    status: SweepStatus
    algorithm: str
    objective: Objective
    trials_created: int
    created_at: datetime
    finished_at: datetime | None


class SweepPage(BaseModel):
    items: list[SweepSummary]
    limit: int
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last")
