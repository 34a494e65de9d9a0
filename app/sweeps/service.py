"""Sweeps: a search checked at submit like a job and stored with its plan and Optuna study; read with its trials and
best so far; cancelled with its trials. The search itself moves on in app/core/sweep_steps.py."""

from __future__ import annotations

import copy
from typing import Any

from sqlalchemy.orm import Session

from app.core import studies
from app.core.errors import Problem, not_found
from app.core.repositories import sweeps as sweep_rows
from app.core.settings import get_settings
from app.core.sweep_steps import ASK_TTL_S, NewTrial, advance, time_limit_passed
from app.core.tables import new_id, utcnow
from app.core.webhooks import record_sweep_end
from app.experiments import service as experiments
from app.jobs import service as jobs
from app.jobs.schemas import JobCreate
from app.models import service as models
from app.models.repository import get_model as model_row
from app.models.specs import parse_model_spec
from app.specchecker.pool import SpecChecker
from app.sweeps import repository, spaces
from app.sweeps.schemas import (
    MAX_CHOICES,
    Dimension,
    FailedAsk,
    SweepCreate,
    SweepOut,
    TrialAsk,
    TrialAsked,
    TrialOut,
)


def _as_sweep_error(exc: Problem, point: dict[str, Any]) -> Problem:
    field = exc.extra.get("field")
    # The job's own extras (the backends seen, for a backend no worker runs) go along as a job's 422 has them.
    extra = {name: value for name, value in exc.extra.items() if name not in ("field", "point")}
    return Problem(422, "Invalid Sweep Point", f"With {point} the sweep's trial would be refused: {exc.title}: "
                   f"{exc.detail}", field=f"job.{field}" if field else "space", point=point, **extra)


def _checked_point(session: Session, body: SweepCreate, plan_model: dict[str, Any] | None, point: dict[str, Any], *,
                   tenant_id: str, checker: SpecChecker, max_params: int, max_attempts: int, queue_base: str,
                   feasibility: dict[str, Any] | None = None) -> Any:
    """The base job with this point's values, through every check a job and (for model paths) a model passes, in a
    savepoint rolled back at once; the job row as it would be stored. `feasibility`: create_job's checks against the
    workers seen (the base job's backend and GPUs, which no point changes)."""
    job = body.job.model_dump(mode="json", exclude_unset=True)
    model_spec = copy.deepcopy(plan_model) if plan_model is not None else None
    for path, value in point.items():
        keys = spaces.parse(path)
        if keys[0] == "model":
            spaces.set_at(model_spec, keys[1:], value)
        else:
            spaces.set_at(job, keys, value)
    savepoint = session.begin_nested()
    try:
        if model_spec is not None:
            job["model_id"] = models.create_model(
                session, tenant_id=tenant_id, spec=_model_spec(model_spec, point), checker=checker,
                max_params=max_params).id
            job.pop("source_job_id", None)
        try:
            request = JobCreate.model_validate(job)
        except ValueError as exc:
            raise Problem(422, "Invalid Sweep Point", f"With {point} the base job is not valid: {exc}",
                          field="space", point=point) from None
        row = jobs.create_job(session, tenant_id=tenant_id, request=request, checker=checker,
                              max_attempts=max_attempts, queue_base=queue_base, **(feasibility or {}))
        return {"request": copy.deepcopy(row.request), "params": dict(row.params or {}), "tags": list(row.tags or []),
                "model_id": row.model_id, "max_attempts": row.max_attempts}
    except Problem as exc:
        raise exc if exc.title == "Invalid Sweep Point" else _as_sweep_error(exc, point) from None
    finally:
        savepoint.rollback()


def _model_spec(spec: dict[str, Any], point: dict[str, Any]) -> Any:
    try:
        return parse_model_spec(spec)
    except ValueError as exc:
        raise Problem(422, "Invalid Sweep Point", f"With {point} the model spec is not valid: {exc}", field="space",
                      point=point) from None


def _mirrored_params(template: dict[str, Any], dimension: dict[str, Any], summary: Any) -> list[str]:
    """The names of the job's params (app/experiments/params.py) that show this dimension's value."""
    if dimension["target"] != "contract":
        return []
    probes = []
    for value in (dimension.get("low"), dimension.get("high")) if "low" in dimension else dimension["choices"][:2]:
        changed = copy.deepcopy(template)
        spaces.set_at(changed, dimension["at"], value)
        probes.append(experiments.submission_params(changed, summary))
    if len(probes) < 2:
        return []
    return sorted(name for name in probes[0] if probes[0].get(name) != probes[1].get(name))


def _create_client_sweep(session: Session, *, tenant_id: str, body: SweepCreate) -> str:
    """A sweep whose space and trials' jobs come from the client (kerasd.tuner): stored with its study, no trial
    made (the client asks for each)."""
    rule = body.early_stopping.model_dump(mode="json")
    plan = {"space_from": "client", "space": [], "metric": body.objective.metric,
            "direction": body.objective.direction, "algorithm": body.algorithm, "seed": body.seed,
            "early_stopping": rule, "max_trials": body.budget.max_trials,
            "max_concurrent": body.budget.max_concurrent, "time_limit_s": body.budget.time_limit_s,
            # Optuna's HyperbandPruner takes "auto" for a last rung it infers from the first completed trial.
            "max_epochs": body.max_epochs or "auto"}
    sweep_id = new_id()
    study_name = f"kerasd-sweep-{sweep_id}"
    studies.create_study(name=study_name, direction=body.objective.direction)
    repository.insert_sweep(session, sweep_id=sweep_id, tenant_id=tenant_id, name=body.name, study_name=study_name,
                            request=body.model_dump(mode="json", exclude_unset=True), plan=plan)
    return sweep_id


# Optuna's GridSampler lists every point of the grid (itertools.product) in each step that asks for a trial: a grid
# is refused above this many points, far more than a sweep's most trials (10,000) could cover anyway.
MAX_GRID_POINTS = 100_000


def _check_grid(space: dict[str, Dimension]) -> None:
    """422 for a grid sweep whose space has a continuous range (a float range without a step), a dimension of more
    than MAX_CHOICES values, or more than MAX_GRID_POINTS points in all."""
    points = 1
    for path, dimension in space.items():
        count = studies.grid_count(_dimension(path, dimension))
        if count is None:
            raise Problem(422, "Invalid Space", f"space: {path!r} is a continuous range ({dimension.kind}), which a "
                          "grid cannot list: give a uniform range a `step` (its values are low, low + step, ... up "
                          "to high), list its values with `choice`, or use the random or tpe algorithm.",
                          field=f"space.{path}")
        if count > MAX_CHOICES:
            raise Problem(422, "Invalid Space", f"space: {path!r} has {count} values on a grid, more than "
                          f"{MAX_CHOICES}: give it a larger step.", field=f"space.{path}")
        points *= count
    if points > MAX_GRID_POINTS:
        raise Problem(422, "Invalid Space", f"space: the grid has {points} points, more than {MAX_GRID_POINTS}: "
                      "fewer values per dimension, or use the random or tpe algorithm.", field="space")


def create_sweep(session: Session, *, tenant_id: str, body: SweepCreate, checker: SpecChecker, max_params: int,
                 max_attempts: int, queue_base: str, **feasibility: Any) -> tuple[str, list[NewTrial]]:
    """Check the sweep, store it with its study, and make its first trials (the caller commits, then queues them).
    `feasibility`: create_job's checks against the workers seen, for the base job."""
    if body.space_from == "client":
        return _create_client_sweep(session, tenant_id=tenant_id, body=body), []
    assert body.job is not None and body.space is not None  # SweepCreate's own check
    if body.job.kind != "fit":
        raise Problem(422, "Invalid Sweep", f"job.kind is {body.job.kind!r}: a sweep's trials are fit jobs.",
                      field="job.kind")
    if body.algorithm == "grid":
        _check_grid(body.space)
    options = {"tenant_id": tenant_id, "checker": checker, "max_params": max_params, "max_attempts": max_attempts,
               "queue_base": queue_base}
    has_model_paths = any(path.startswith("model.") for path in body.space)
    base = _checked_point(session, body, None, {}, **options, feasibility=feasibility)
    model = model_row(session, tenant_id=tenant_id, model_id=base["model_id"])
    model_spec = model.spec if model.weights_sha256 is None else None
    with_defaults = body.job.model_dump(mode="json")
    dimensions, model_template = spaces.resolve(body.space, job=with_defaults, template=base["request"],
                                                model_spec=model_spec, catalog=models.catalog_of(checker))
    for point in spaces.corners(body.space):
        _checked_point(session, body, model_spec if has_model_paths else None, point, **options)
    for dimension in dimensions:
        dimension["params"] = _mirrored_params(base["request"], dimension, model.summary)
    epochs = body.job.fit.epochs
    plan = {"space": dimensions, "model_template": model_template, "template": base["request"],
            "params": base["params"], "tags": base["tags"], "model_id": base["model_id"],
            "max_attempts": base["max_attempts"], "metric": body.objective.metric,
            "direction": body.objective.direction, "algorithm": body.algorithm, "seed": body.seed,
            "early_stopping": body.early_stopping.model_dump(mode="json"), "max_trials": body.budget.max_trials,
            "max_concurrent": body.budget.max_concurrent, "time_limit_s": body.budget.time_limit_s,
            "max_epochs": max([epochs, *(d.get("high", 0) for d in dimensions if d["path"] == "fit.epochs")])}
    sweep_id = new_id()
    study_name = f"kerasd-sweep-{sweep_id}"
    studies.create_study(name=study_name, direction=body.objective.direction)
    repository.insert_sweep(session, sweep_id=sweep_id, tenant_id=tenant_id, name=body.name, study_name=study_name,
                            request=body.model_dump(mode="json", exclude_unset=True), plan=plan)
    return sweep_id, advance(session, sweep_id=sweep_id)


def _trial(row: Any) -> TrialOut:
    return TrialOut(number=row.number, job_id=row.job_id, status=row.status, params=row.params or {},
                    objective=row.objective, note=row.note)


def sweep_answer(session: Session, *, tenant_id: str, sweep_id: str) -> SweepOut:
    row = repository.get_sweep(session, tenant_id=tenant_id, sweep_id=sweep_id)
    if row is None:
        raise not_found("sweep", sweep_id)
    trials = [_trial(t) for t in repository.trials_of(session, sweep_id=sweep_id)]
    request, plan = row.request, row.plan
    failed_asks = ([FailedAsk(number=f.number, params=f.params or {}, reason=f.reason, failed_at=f.failed_at)
                    for f in repository.failed_asks_of(session, sweep_id=sweep_id)]
                   if plan.get("space_from") == "client" else [])
    scored = [t for t in trials if t.objective is not None and t.status == "succeeded"]
    pick = min if plan["direction"] == "minimize" else max
    best = pick(scored, key=lambda t: t.objective) if scored else None
    counts: dict[str, int] = {}
    for trial in trials:
        counts[trial.status] = counts.get(trial.status, 0) + 1
    return SweepOut(id=row.id, name=row.name, status=row.status, algorithm=plan["algorithm"],
                    objective={"metric": plan["metric"], "direction": plan["direction"]},
                    budget={"max_trials": plan["max_trials"], "max_concurrent": plan["max_concurrent"],
                            "time_limit_s": plan["time_limit_s"]},
                    early_stopping=plan["early_stopping"], trials_created=row.trials_created, counts=counts,
                    best=best, trials=trials, failed_asks=failed_asks, created_at=row.created_at,
                    finished_at=row.finished_at, request=request)


def cancel_sweep(session: Session, *, tenant_id: str, sweep_id: str) -> list[tuple[str, str]]:
    """End the sweep `cancelled` and cancel its queued and running trials; (job id, 'cancelled' or 'requested')
    for each trial cancelled, for the caller to announce after its commit."""
    row = repository.get_sweep(session, tenant_id=tenant_id, sweep_id=sweep_id)
    if row is None:
        raise not_found("sweep", sweep_id)
    if row.status != "running":
        raise Problem(409, "Sweep Finished", f"Sweep {sweep_id} already ended {row.status}; there is nothing to "
                      "cancel.")
    repository.end_sweep(session, sweep_id=sweep_id, status="cancelled")
    record_sweep_end(session, sweep_id=sweep_id, public_url=get_settings().public_url)
    return [(job_id, jobs.cancel_job(session, tenant_id=tenant_id, job_id=job_id))
            for job_id in repository.active_trial_jobs(session, sweep_id=sweep_id)]


# --- client sweeps: the space declared with each ask, each trial's job submitted by the client -------------------

def _client_sweep(session: Session, *, tenant_id: str, sweep_id: str) -> Any:
    """The tenant's client sweep, locked for this step (another tenant's is a 404); 409 if it is not one or ended."""
    if repository.get_sweep(session, tenant_id=tenant_id, sweep_id=sweep_id) is None:
        raise not_found("sweep", sweep_id)
    sweep = sweep_rows.lock_sweep(session, sweep_id=sweep_id)
    if sweep.plan.get("space_from") != "client":
        raise Problem(409, "Not A Client Sweep", f"Sweep {sweep_id} makes its own trials from its base job and "
                      "space; only a sweep created with `space_from: client` takes asks and trial jobs.")
    if sweep.status != "running":
        raise Problem(409, "Sweep Finished", f"Sweep {sweep_id} already ended {sweep.status}; start a new sweep "
                      "for more trials.")
    return sweep


def _dimension(name: str, dimension: Dimension) -> dict[str, Any]:
    kind = dimension.kind
    found: dict[str, Any] = {"path": name, "kind": kind}
    if kind == "choice":
        found["choices"] = dimension.choice
    else:
        found["low"], found["high"] = getattr(dimension, kind)
        if dimension.step is not None:
            found["step"] = dimension.step
    return found


def ask_trial(session: Session, *, tenant_id: str, sweep_id: str, body: TrialAsk) -> TrialAsked:
    """A new trial of a client sweep: the values Optuna's sampler chose in the space the client declared (the caller
    commits). 409 when the sweep's budget (trials, time) is spent."""
    sweep = _client_sweep(session, tenant_id=tenant_id, sweep_id=sweep_id)
    plan = sweep.plan
    expired = time_limit_passed(sweep, utcnow())
    if expired or sweep.trials_created >= plan["max_trials"]:
        spent = "time limit" if expired else f"{plan['max_trials']} trials"
        raise Problem(409, "Sweep Budget Spent", f"Sweep {sweep_id} has spent its budget ({spent}); it ends when its "
                      "last trials do. Start a new sweep for more trials.", trials_created=sweep.trials_created)
    dimensions = [_dimension(name, dimension) for name, dimension in body.space.items()]
    try:
        trial = studies.ask_with(plan, sweep.study_name, dimensions, asked_before=sweep.trials_created)
    except ValueError as exc:  # Optuna refuses a distribution (an int step that does not fit its range, ...)
        raise Problem(422, "Invalid Space", f"space: {exc}", field="space") from None
    sweep_rows.count_created(session, sweep_id=sweep_id, created=sweep.trials_created + 1)
    return TrialAsked(number=trial.number, params=trial.params)


def _asked_trial(session: Session, sweep: Any, number: int) -> Any:
    """The client sweep's asked trial still waiting for its job (Optuna's record of it): 404 if it was never asked
    for, 409 if it has its job or was counted failed without one."""
    # By the study's own record: an ask whose commit failed still numbered its trial there.
    asked = studies.trial_of(sweep.study_name, number) if number >= 0 else None
    if asked is None:
        raise not_found("trial", f"{sweep.id}/{number}")
    if repository.trial_job(session, sweep_id=sweep.id, number=number) is not None:
        raise Problem(409, "Trial Has A Job", f"Trial {number} of sweep {sweep.id} already has its job; its job's "
                      "end is the trial's. Ask for a new trial (POST /v1/sweeps/{id}/trials) to train another "
                      "model.", trial=number)
    if asked.state != studies.RUNNING:
        reason = repository.failed_ask_reason(session, sweep_id=sweep.id, number=number)
        why = (f"was counted failed without a job ({reason})" if reason is not None else
               f"waited more than {int(ASK_TTL_S)} s for its job after the sweep's budget was spent, so it was "
               "counted failed")
        raise Problem(409, "Trial Expired", f"Trial {number} of sweep {sweep.id} {why}; ask for a new trial.",
                      trial=number)
    return asked


def fail_trial(session: Session, *, tenant_id: str, sweep_id: str, number: int, reason: str) -> None:
    """A client sweep's asked trial that will have no job (its model could not be built, or its job was refused):
    its study is told it failed, so its values count as failed and its place is free, and the sweep shows it with
    `reason`; the sweep ends now if that was all it waited for (the caller commits)."""
    sweep = _client_sweep(session, tenant_id=tenant_id, sweep_id=sweep_id)
    asked = _asked_trial(session, sweep, number)
    studies.tell(sweep.plan, sweep.study_name, number=number, status="failed", value=None)
    sweep_rows.insert_failed_ask(session, sweep_id=sweep_id, number=number, params=dict(asked.params), reason=reason,
                                 now=utcnow())
    advance(session, sweep_id=sweep_id)


def submit_trial_job(session: Session, *, tenant_id: str, sweep_id: str, number: int, body: JobCreate,
                     checker: SpecChecker, max_attempts: int, queue_base: str, **feasibility: Any) -> Any:
    """The job of a client sweep's asked trial, checked and stored as POST /v1/jobs stores a job (`feasibility`:
    create_job's max_waiting_gpus, live_workers, backends_seen and default_backend, so it is refused as a job the
    workers seen could never run is), linked to the trial (its epochs reported to the study, its end told); the
    caller commits, then queues it."""
    sweep = _client_sweep(session, tenant_id=tenant_id, sweep_id=sweep_id)
    if body.kind != "fit":
        raise Problem(422, "Invalid Trial Job", f"kind is {body.kind!r}: a sweep's trials are fit jobs.",
                      field="kind")
    asked = _asked_trial(session, sweep, number)
    plan = sweep.plan
    link = {"sweep_id": sweep_id, "number": number, "study": sweep.study_name, "optuna_trial_id": asked._trial_id,
            "metric": plan["metric"], "direction": plan["direction"],
            "prune": plan["early_stopping"]["rule"] != "none"}
    job = jobs.create_job(session, tenant_id=tenant_id, request=body, checker=checker, max_attempts=max_attempts,
                          queue_base=queue_base, trial=link, trial_params=dict(asked.params), **feasibility)
    sweep_rows.insert_trial_row(session, trial={"sweep_id": sweep_id, "number": number, "job_id": job.id,
                                                "optuna_trial_id": asked._trial_id, "params": dict(asked.params)})
    return job
